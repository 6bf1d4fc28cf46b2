"""Ingestion through the gateway with the real openai SDK, sync and async: /v1/files
(upload, list, retrieve, content, delete), /v1/vector_stores create, files.create /
retrieve / delete on a store, then search; the errors (unknown / other key's file,
store not granted, bad chunking strategy, oversize upload, non-text file, over budget:
nothing ingested); ledger rows under the key; a managed store's per-search fee
reserved by the key's budget and denied before the backend is called."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import Driver
from tests.fakes.replies_media import MediaResponder
from tests.fakes.server import FakeProvider
from tests.fakes.vector_stores import FakeVectorStores
from tests.gateway.conftest import RunningGateway
from tollway.vectors.backends.openai import OPENAI_SEARCH_FEE_NANOS

MANAGED_KEY = "sk-test-gateway-files-managed-0123456789"
BODY_LIMIT = 64 * 1024

HANDBOOK = (
    "Travel policy. Employees fly economy on trips shorter than six hours, and book "
    "through the travel desk at least two weeks ahead. Receipts go to finance within "
    "thirty days of the trip, scanned, with the project code written on each one.\n\n"
    "Office hours. The Paris office opens at nine and closes at six; the Oslo office "
    "opens at eight. Visitors sign in at the front desk and wear a badge at all times "
    "while inside the building, and leave it at the desk when they go.\n\n"
    "Holidays. Every employee has twenty-five days of paid leave a year, booked in the "
    "leave planner. Unused days carry over until the end of March of the next year, "
    "after which they lapse unless a manager approves a longer carry-over in writing."
)


def _config(tmp_path: Path, fake: FakeProvider, managed_url: str) -> dict[str, Any]:
    env = "env:TOLLWAY_TEST_UPSTREAM_KEY"
    return {
        "models": {"emb": {"model": "openai/text-embedding-3-small", "api_base": fake.url,
                           "api_key": env}},
        "vector_stores": {
            "handbook": {"backend": "sqlite", "embedding": "emb",
                         "path": str(tmp_path / "handbook.db")},
            "small": {"backend": "sqlite", "embedding": "emb", "batch_size": 1,
                      "chunking": {"size": 400, "overlap": 0},
                      "path": str(tmp_path / "small.db")},
            "managed": {"backend": "openai", "base_url": managed_url,
                        "api_key": "env:TEST_GW_FILES_MANAGED_KEY",
                        "options": {"poll_interval": 0.01}},
        },
        "gateway": {"max_body_bytes": BODY_LIMIT, "files_dir": str(tmp_path / "uploads")},
    }


@pytest.fixture
def running(gateway_server: Callable[..., RunningGateway], fake: FakeProvider, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Any:
    fake.default = MediaResponder()
    monkeypatch.setenv("TEST_GW_FILES_MANAGED_KEY", MANAGED_KEY)
    with FakeVectorStores(api_key=MANAGED_KEY) as managed:
        yield gateway_server(**_config(tmp_path, fake, managed.url)), managed


def _call(driver: Driver, gw: RunningGateway, secret: str, method: str, *args: Any,
          **kw: Any) -> Any:
    """``client.<method>(*args, **kw)`` on the sync or the async openai client."""
    def target(client: Any) -> Any:
        for name in method.split("."):
            client = getattr(client, name)
        return client

    if driver.is_async:
        async def run() -> Any:
            async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=secret,
                                          max_retries=0) as client:
                result = await target(client)(*args, **kw)
                if method == "files.content":
                    return result.content
                if method.endswith((".list", ".list_files")):
                    return [item async for item in result]
                return result
        return asyncio.run(run())
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=secret, max_retries=0) as client:
        result = target(client)(*args, **kw)
        if method == "files.content":
            return result.content
        return list(result) if method.endswith((".list", ".list_files")) else result


def _upload(driver: Driver, gw: RunningGateway, secret: str, name: str, data: bytes,
            purpose: str = "assistants") -> Any:
    return _call(driver, gw, secret, "files.create", file=(name, data), purpose=purpose)


def test_upload_attach_search_and_delete_with_the_openai_sdk(
        running: Any, driver: Driver, tmp_path: Path) -> None:
    gw, _ = running
    secret, key = gw.create_key(org="acme", vector_store_writes=["handbook"])
    made = _upload(driver, gw, secret, "../../etc/handbook.txt", HANDBOOK.encode())
    assert made.id.startswith("file-") and made.bytes == len(HANDBOOK.encode())
    assert made.filename == "handbook.txt" and made.purpose == "assistants"
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == [made.id,
                                                                        f"{made.id}.json"]
    assert _call(driver, gw, secret, "files.retrieve", made.id).filename == "handbook.txt"
    assert [f.id for f in _call(driver, gw, secret, "files.list")] == [made.id]
    assert _call(driver, gw, secret, "files.content", made.id) == HANDBOOK.encode()

    store = _call(driver, gw, secret, "vector_stores.create", name="handbook")
    assert store.id == "handbook" and store.object == "vector_store"
    attached = _call(driver, gw, secret, "vector_stores.files.create_and_poll", made.id,
                     vector_store_id="handbook", attributes={"team": "hr", "year": 2026},
                     chunking_strategy={"type": "static", "static": {
                         "max_chunk_size_tokens": 100, "chunk_overlap_tokens": 10}})
    assert attached.id == made.id and attached.status == "completed"
    assert attached.last_error is None and attached.attributes == {"team": "hr", "year": 2026}
    assert attached.chunking_strategy.static.max_chunk_size_tokens == 100  # type: ignore[union-attr]

    listed = _call(driver, gw, secret, "vector_stores.files.list", "handbook", limit=1)
    # its chunks are one item, once, over pages of one chunk each
    assert [(f.id, f.attributes) for f in listed] == [(made.id, {"team": "hr", "year": 2026})]
    # with the chunking it was attached with (OpenAI sends it on every store file; strict
    # clients such as ogx_client reject an item without it)
    assert listed[0].chunking_strategy.static.max_chunk_size_tokens == 100  # type: ignore[union-attr]
    reader, _ = gw.create_key(vector_stores=["handbook"])  # not its file: the store's chunking
    other = _call(driver, gw, reader, "vector_stores.files.list", "handbook")
    assert [f.chunking_strategy.type for f in other] == ["static"]

    page = _call(driver, gw, secret, "vector_stores.search", "handbook",
                 query="When does the Paris office open?", max_num_results=1)
    hit = page.data[0]
    assert "Paris office opens at nine" in hit.content[0].text
    assert (hit.file_id, hit.filename) == (made.id, "handbook.txt")
    assert hit.attributes["team"] == "hr" and hit.attributes["chunk_index"] >= 1

    rows = gw.ledger_rows()
    embedding = [r for r in rows if r["kind"] == "embedding"]
    assert embedding and {(r["key"], r["org"], r["status"]) for r in embedding} == {
        (key.id, "acme", "ok")}
    assert all(r["cost_nanos"] > 0 for r in embedding)
    chunks = sum(r["input_tokens"] for r in embedding)
    assert chunks > 0  # the file's chunks were embedded, metered under the key

    gone = _call(driver, gw, secret, "vector_stores.files.delete", made.id,
                 vector_store_id="handbook")
    assert gone.deleted and gone.object == "vector_store.file.deleted"
    after = _call(driver, gw, secret, "vector_stores.search", "handbook", query="Paris office")
    assert [h for h in after.data if h.file_id == made.id] == []
    with pytest.raises(openai.NotFoundError, match="not in vector store"):
        _call(driver, gw, secret, "vector_stores.files.retrieve", made.id,
              vector_store_id="handbook")
    assert _call(driver, gw, secret, "files.delete", made.id).deleted
    with pytest.raises(openai.NotFoundError, match="No file found"):
        _call(driver, gw, secret, "files.retrieve", made.id)
    assert list((tmp_path / "uploads").iterdir()) == []


def test_a_managed_store_gets_the_file_whole(running: Any, driver: Driver) -> None:
    gw, managed = running
    secret, _ = gw.create_key(vector_store_writes=["managed"])
    made = _upload(driver, gw, secret, "capitals.md", b"Oslo is the capital of Norway.")
    attached = _call(driver, gw, secret, "vector_stores.files.create", "managed",
                     file_id=made.id, attributes={"region": "north"})
    assert attached.status == "completed" and attached.chunking_strategy.type == "other"
    (upstream,) = managed.files.values()  # the backend got the file whole, named after it
    assert upstream.filename == f"{made.id}-capitals.md"
    assert upstream.data == b"Oslo is the capital of Norway."
    page = _call(driver, gw, secret, "vector_stores.search", "managed", query="capital Norway")
    assert (page.data[0].file_id, page.data[0].filename) == (made.id, "capitals.md")
    assert page.data[0].attributes["region"] == "north"
    with pytest.raises(openai.BadRequestError, match="chunks files on its side"):
        _call(driver, gw, secret, "vector_stores.files.create", "managed", file_id=made.id,
              chunking_strategy={"type": "static", "static": {
                  "max_chunk_size_tokens": 200, "chunk_overlap_tokens": 0}})
    _call(driver, gw, secret, "vector_stores.files.delete", made.id, vector_store_id="managed")
    assert _call(driver, gw, secret, "vector_stores.search", "managed",
                 query="capital Norway").data == []
    assert managed.files == {}  # removed upstream too (no storage fee left running)


def test_writing_needs_the_write_grant(running: Any, driver: Driver, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from tollway.cli import main
    from tollway.gateway.key_store import SQLiteKeyStore

    gw, _ = running
    writer, _ = gw.create_key(vector_store_writes=["handbook"])
    reader, _ = gw.create_key(vector_stores=["handbook"])
    made = _upload(driver, gw, writer, "notes.txt", b"Lunch is at noon in the canteen.")
    _call(driver, gw, writer, "vector_stores.files.create", "handbook", file_id=made.id)
    assert _call(driver, gw, reader, "vector_stores.search", "handbook", query="lunch").data
    own = _upload(driver, gw, reader, "spam.txt", b"Buy cheap watches.")
    with pytest.raises(openai.PermissionDeniedError, match="--vector-store-writes"):
        _call(driver, gw, reader, "vector_stores.files.create", "handbook", file_id=own.id)
    with pytest.raises(openai.PermissionDeniedError, match="not add or remove files"):
        _call(driver, gw, reader, "vector_stores.files.delete", made.id,
              vector_store_id="handbook")
    assert [s.id for s in _call(driver, gw, writer, "vector_stores.list")] == ["handbook"]

    path = str(tmp_path / "cli-keys.db")
    assert main(["keys", "--store", path, "create", "--vector-store-writes", "docs"]) == 0
    capsys.readouterr()
    store = SQLiteKeyStore(path)
    try:
        (key,) = store.list()
    finally:
        store.close()
    assert key.vector_store_writes == ("docs",) and key.allows_store_write("docs")
    assert key.allows_store("docs") and not key.allows_store("wiki")


def test_ingestion_errors_say_what_was_wrong(running: Any, driver: Driver) -> None:
    gw, _ = running
    secret, _ = gw.create_key(vector_store_writes=["handbook"])
    other, _ = gw.create_key(vector_store_writes=["handbook", "small"])
    mine = _upload(driver, gw, secret, "notes.txt", b"Lunch is at noon.")
    theirs = _upload(driver, gw, other, "private.txt", b"The safe code is 1234.")

    with pytest.raises(openai.NotFoundError, match="No file found with id 'file-nope'"):
        _call(driver, gw, secret, "vector_stores.files.create", "handbook", file_id="file-nope")
    for method, args in [("vector_stores.files.create", ("handbook",)),
                         ("files.retrieve", ()), ("files.content", ()), ("files.delete", ())]:
        kw = {"file_id": theirs.id} if method.startswith("vector") else {}
        with pytest.raises(openai.NotFoundError, match="No file found"):
            _call(driver, gw, secret, method, *(args or (theirs.id,)), **kw)
    assert [f.id for f in _call(driver, gw, secret, "files.list")] == [mine.id]
    with pytest.raises(openai.NotFoundError, match="No vector store found with id 'small'"):
        _call(driver, gw, secret, "vector_stores.files.create", "small", file_id=mine.id)
    with pytest.raises(openai.BadRequestError, match="declared under 'vector_stores:'"):
        _call(driver, gw, secret, "vector_stores.create", name="small")
    with pytest.raises(openai.BadRequestError, match="max_chunk_size_tokens is a whole number"):
        _call(driver, gw, secret, "vector_stores.files.create", "handbook", file_id=mine.id,
              chunking_strategy={"type": "static", "static": {
                  "max_chunk_size_tokens": 50, "chunk_overlap_tokens": 0}})
    with pytest.raises(openai.BadRequestError, match="from 0 to half of max_chunk_size_tokens"):
        _call(driver, gw, secret, "vector_stores.files.create", "handbook", file_id=mine.id,
              chunking_strategy={"type": "static", "static": {
                  "max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150}})
    with pytest.raises(openai.BadRequestError, match="'purpose' is one of"):
        _upload(driver, gw, secret, "x.txt", b"x", purpose="nonsense")
    with pytest.raises(openai.APIStatusError) as info:
        _upload(driver, gw, secret, "big.txt", b"a" * (BODY_LIMIT + 1))
    assert info.value.status_code == 413

    binary = _upload(driver, gw, secret, "scan.pdf", b"%PDF-1.7\xff\xfe\x00binary")
    failed = _call(driver, gw, secret, "vector_stores.files.create", "handbook",
                   file_id=binary.id)
    assert failed.status == "failed" and failed.last_error is not None
    assert failed.last_error.code == "unsupported_file" and "UTF-8" in failed.last_error.message
    again = _call(driver, gw, secret, "vector_stores.files.retrieve", binary.id,
                  vector_store_id="handbook")
    assert again.status == "failed"
    assert not [r for r in gw.ledger_rows() if r["kind"] == "embedding"]  # nothing embedded


def test_a_key_over_budget_gets_429_and_nothing_is_ingested(
        running: Any, driver: Driver, fake: FakeProvider) -> None:
    """Batches of one chunk, two requests allowed: the third batch is refused, and the
    two chunks already stored are removed again."""
    gw, _ = running
    secret, key = gw.create_key(vector_store_writes=["small"], budgets=["2 requests/day"])
    made = _upload(driver, gw, secret, "handbook.txt", HANDBOOK.encode())
    with pytest.raises(openai.APIStatusError) as info:
        _call(driver, gw, secret, "vector_stores.files.create", "small", file_id=made.id)
    assert info.value.status_code == 429 and "budget" in str(info.value).lower()
    assert info.value.body["type"] == "rate_limit_error"  # type: ignore[index]
    assert len([r for r in fake.requests if r.path.endswith("/embeddings")]) == 2
    assert _call(driver, gw, secret, "vector_stores.files.list", "small") == []
    statuses = [(r["key"], r["status"]) for r in gw.ledger_rows() if r["kind"] == "embedding"]
    assert statuses == [(key.id, "ok"), (key.id, "ok"), (key.id, "BudgetExceededError")]
    with pytest.raises(openai.NotFoundError):  # never attached
        _call(driver, gw, secret, "vector_stores.files.retrieve", made.id,
              vector_store_id="small")


def test_a_managed_stores_search_fee_is_reserved_by_the_keys_budget(
        running: Any, driver: Driver) -> None:
    gw, managed = running
    fee_usd = OPENAI_SEARCH_FEE_NANOS / 1e9
    roomy, key = gw.create_key(vector_stores=["managed"], budgets=[f"{fee_usd * 1.6:.6f} usd/day"])
    short, _ = gw.create_key(vector_stores=["managed"], budgets=[f"{fee_usd / 2:.6f} usd/day"])
    with pytest.raises(openai.APIStatusError) as info:
        _call(driver, gw, short, "vector_stores.search", "managed", query="capital")
    assert info.value.status_code == 429 and managed.searches == 0  # denied before the backend
    _call(driver, gw, roomy, "vector_stores.search", "managed", query="capital")
    assert managed.searches == 1
    with pytest.raises(openai.APIStatusError) as info:  # the fee spent: no room for another
        _call(driver, gw, roomy, "vector_stores.search", "managed", query="capital")
    assert info.value.status_code == 429 and managed.searches == 1
    rows = [(r["key"], r["status"], r["cost_nanos"]) for r in gw.ledger_rows()
            if r["kind"] == "retrieval"]
    assert rows[1:] == [(key.id, "ok", OPENAI_SEARCH_FEE_NANOS),
                        (key.id, "BudgetExceededError", 0)]


def test_a_file_batch_ingests_every_file_and_deleting_a_file_removes_its_chunks(
        running: Any, driver: Driver) -> None:
    import io

    gw, _ = running
    secret, _ = gw.create_key(vector_store_writes=["handbook"])
    first = io.BytesIO(b"The Paris office opens at nine.")
    first.name = "paris.txt"
    second = io.BytesIO(b"The Oslo office opens at eight.")
    second.name = "oslo.txt"
    batch = _call(driver, gw, secret, "vector_stores.file_batches.upload_and_poll", "handbook",
                  files=[first, second])
    assert batch.id.startswith("vsfb_") and batch.status == "completed"
    assert (batch.file_counts.completed, batch.file_counts.total) == (2, 2)
    listed = _call(driver, gw, secret, "vector_stores.file_batches.list_files", batch.id,
                   vector_store_id="handbook")
    names = {f.id: f.status for f in listed}
    assert len(names) == 2 and set(names.values()) == {"completed"}
    page = _call(driver, gw, secret, "vector_stores.search", "handbook",
                 query="When does the Oslo office open?", max_num_results=2)
    assert {h.filename for h in page.data} == {"paris.txt", "oslo.txt"}
    oslo = next(h.file_id for h in page.data if h.filename == "oslo.txt")

    assert _call(driver, gw, secret, "files.delete", oslo).deleted  # and out of the store
    page = _call(driver, gw, secret, "vector_stores.search", "handbook",
                 query="When does the Oslo office open?", max_num_results=2)
    assert [h.filename for h in page.data] == ["paris.txt"]
    other, _ = gw.create_key(vector_store_writes=["handbook"])
    with pytest.raises(openai.NotFoundError, match="No file batch found"):
        _call(driver, gw, other, "vector_stores.file_batches.retrieve", batch.id,
              vector_store_id="handbook")


def test_a_batch_over_budget_is_429_and_leaves_none_of_its_files(
        running: Any, driver: Driver, fake: FakeProvider) -> None:
    gw, _ = running
    secret, _ = gw.create_key(vector_store_writes=["small"], budgets=["1 requests/day"])
    ids = [_upload(driver, gw, secret, f"n{i}.txt", f"Note {i}: lunch at noon.".encode()).id
           for i in range(2)]
    with pytest.raises(openai.APIStatusError) as info:
        _call(driver, gw, secret, "vector_stores.file_batches.create", "small", file_ids=ids)
    assert info.value.status_code == 429
    assert len([r for r in fake.requests if r.path.endswith("/embeddings")]) == 1
    assert _call(driver, gw, secret, "vector_stores.files.list", "small") == []
    for file_id in ids:
        with pytest.raises(openai.NotFoundError, match="not in vector store"):
            _call(driver, gw, secret, "vector_stores.files.retrieve", file_id,
                  vector_store_id="small")
    with pytest.raises(openai.BadRequestError, match="'file_ids'"):
        _call(driver, gw, secret, "vector_stores.file_batches.create", "small", file_ids=[])
