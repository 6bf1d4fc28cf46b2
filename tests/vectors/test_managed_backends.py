"""The shared backend scenarios (tests/vectors/test_backends.py's documents and
filters) against the managed backends, ``openai`` and ``llama_stack``, over a loopback
server speaking the OpenAI vector stores API (tests/fakes/vector_stores.py), both
drivers. Managed stores take whole documents: ids are file ids, one per document."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.vector_stores import FakeVectorStores, lexical_score
from tests.vectors.test_backends import DOCS, FILTERS
from tollway.core.cost.ledger import Ledger
from tollway.vectors import BackendUnavailableError, BadFilterError, VectorStoreError
from tollway.vectors.backends.openai import OPENAI_SEARCH_FEE_NANOS, openai_filter
from tollway.vectors.filters import matches, parse_filter

FAKE_KEY = "sk-test-managed-vector-key-0123456789"


@pytest.fixture
def fake_vs() -> Iterator[FakeVectorStores]:
    with FakeVectorStores(api_key=FAKE_KEY, ingest_polls=2) as server:
        yield server


@pytest.fixture(params=["openai", "llama_stack"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def managed(kind: str, fake_vs: FakeVectorStores, ledger: Ledger,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    from tollway.vectors import VectorStore

    monkeypatch.setenv("TEST_MANAGED_VS_KEY", FAKE_KEY)
    opened: list[Any] = []

    def make(name: str = "docs", **extra: Any) -> Any:
        spec = {"backend": kind, "base_url": fake_vs.url, "api_key": "env:TEST_MANAGED_VS_KEY",
                "options": {"poll_interval": 0.01, **extra.pop("options", {})}, **extra}
        store = VectorStore(name, config=False, spec=spec, ledger=ledger)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def fill(store: Any, call: Any) -> Any:
    return call(store, "add", [t for t, _ in DOCS], metadata=[m for _, m in DOCS],
                ids=[f"d{i}" for i in range(len(DOCS))])


def test_add_uploads_attaches_polls_and_search_ranks_by_the_servers_scores(
        managed: Any, call: Any, fake_vs: FakeVectorStores) -> None:
    store = managed()
    added = fill(store, call)
    assert len(added.ids) == len(DOCS) and all(i.startswith("file-") for i in added.ids)
    assert added.cost_nanos == 0 and added.embedding_tokens == 0  # the server embeds
    (vs,) = fake_vs.stores.values()
    assert vs.name == "docs" and all(f.status == "completed" for f in vs.files.values())
    attach = [b for m, p, b in fake_vs.requests if m == "POST" and p.endswith("/files")
              and p.startswith("/v1/vector_stores/")]
    assert attach[0] == {"file_id": added.ids[0],
                         "attributes": {**DOCS[0][1], "source": "text:d0"}}
    hits = call(store, "search", "capital of Norway fjord", k=2)
    assert hits[0].id == added.ids[0] and hits[0].text == DOCS[0][0]
    assert hits[0].score == pytest.approx(lexical_score("capital of Norway fjord", DOCS[0][0]))
    assert hits[0].score >= hits[1].score and len(hits) == 2
    assert hits[0].metadata["lang"] == "en" and hits[0].source == "text:d0"
    # a second store object finds the same server store by name instead of making one
    again = managed()
    assert call(again, "search", "Berlin Deutschland", k=1)[0].id == added.ids[2]
    assert len(fake_vs.stores) == 1


@pytest.mark.parametrize("flt", FILTERS, ids=[str(f) for f in FILTERS])
def test_filters_select_exactly_the_matching_documents(managed: Any, call: Any,
                                                       flt: dict[str, Any]) -> None:
    store = managed()
    ids = fill(store, call).ids
    hits = call(store, "search", "capital", k=10, filters=flt)
    tree = parse_filter(flt)
    want = {ids[i] for i, (_, meta) in enumerate(DOCS)
            if matches(tree, {**meta, "source": f"text:d{i}"})}
    assert {h.id for h in hits} == want


def test_filter_translation_is_openais_comparison_and_compound_format() -> None:
    tree = parse_filter({"$or": [{"lang": {"$in": ["de", "fr"]}},
                                 {"year": {"$gte": 2021, "$lt": 2025}}]})
    assert tree is not None
    assert openai_filter(tree) == {"type": "or", "filters": [
        {"type": "in", "key": "lang", "value": ["de", "fr"]},
        {"type": "and", "filters": [{"type": "gte", "key": "year", "value": 2021},
                                    {"type": "lt", "key": "year", "value": 2025}]}]}


def test_delete_by_id_and_by_filter_and_list_pages(managed: Any, call: Any,
                                                   fake_vs: FakeVectorStores) -> None:
    store = managed()
    ids = fill(store, call).ids
    first = call(store, "list", limit=2)
    assert [c.id for c in first.chunks] == ids[:2] and first.next_after == ids[1]
    rest = call(store, "list", limit=10, after=first.next_after)
    assert [c.id for c in rest.chunks] == ids[2:] and rest.next_after is None
    assert rest.chunks[0].metadata["lang"] == "de" and rest.chunks[0].source == "text:d2"
    assert call(store, "delete", [ids[0], "file-missing"]) == 1
    assert call(store, "delete", filters={"topic": "tech"}) == 2
    assert [c.id for c in call(store, "list").chunks] == ids[1:3]
    assert set(fake_vs.files) == set(ids[1:3])  # the uploads are deleted too (storage)
    assert {h.id for h in call(store, "search", "capital", k=5)} <= set(ids[1:3])


def test_a_file_added_again_replaces_the_older_upload(managed: Any, call: Any) -> None:
    store = managed()
    old = call(store, "add", files=[("notes.txt", "Old notes about bridges.")]).ids[0]
    new = call(store, "add", files=[("notes.txt", "New notes about tunnels.")]).ids[0]
    assert [c.id for c in call(store, "list").chunks] == [new] and new != old
    assert "tunnels" in call(store, "search", "notes", k=3)[0].text


def test_each_search_is_a_retrieval_row_with_the_backends_fee(
        managed: Any, call: Any, ledger: Ledger, kind: str,
        fake_vs: FakeVectorStores) -> None:
    import tollway

    store = managed()
    fill(store, call)
    with tollway.trace("beadfeed" * 4):
        call(store, "search", "capital of Norway", k=2, filters={"lang": "en"})
    rows = [r for r in ledger.records() if r.kind == "retrieval"]  # type: ignore[attr-defined]
    assert len(rows) == 1 and fake_vs.searches == 1
    row = rows[0]
    fee = OPENAI_SEARCH_FEE_NANOS if kind == "openai" else 0
    assert row.trace_id == "beadfeed" * 4 and row.provider == kind and row.model == "docs"
    assert row.cost_nanos == fee and row.attribution["backend_fee_nanos"] == fee
    assert row.attribution["hits"] == 2 and row.status == "ok"


def test_a_configured_fee_overrides_the_default(managed: Any, call: Any,
                                                ledger: Ledger) -> None:
    store = managed(options={"search_fee_usd": "0.004"})
    fill(store, call)
    call(store, "search", "capital", k=1)
    (row,) = [r for r in ledger.records() if r.kind == "retrieval"]  # type: ignore[attr-defined]
    assert row.cost_nanos == 4_000_000


def test_failures_are_typed_errors_without_the_key(managed: Any, call: Any,
                                                   fake_vs: FakeVectorStores,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = managed()
    with pytest.raises(VectorStoreError, match=r"could not ingest blob\.bin") as info:
        call(store, "add", files=[("blob.bin", b"\xff\xfe\x00binary")])
    assert "unsupported_file" in str(info.value)
    with pytest.raises(BadFilterError):
        call(store, "search", "x", filters={"year": {"$gt": "x"}})
    with pytest.raises(VectorStoreError, match="metadata keys"):
        call(store, "add", ["x"], metadata={f"k{i}": i for i in range(16)})
    monkeypatch.setenv("TEST_MANAGED_VS_KEY", "sk-wrong-key-0123456789abcdef")
    wrong = managed("other")
    with pytest.raises(BackendUnavailableError, match="401") as denied:
        call(wrong, "search", "x")
    assert "sk-wrong" not in str(denied.value) and FAKE_KEY not in str(denied.value)
    assert "sk-wrong" not in repr(wrong.backend)


def test_a_slow_ingestion_stops_at_the_deadline(kind: str, ledger: Ledger, call: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from tollway.vectors import VectorStore

    monkeypatch.setenv("TEST_MANAGED_VS_KEY", FAKE_KEY)
    with FakeVectorStores(api_key=FAKE_KEY, ingest_polls=10_000) as slow:
        store = VectorStore("docs", config=False, ledger=ledger, spec={
            "backend": kind, "base_url": slow.url, "api_key": "env:TEST_MANAGED_VS_KEY",
            "options": {"poll_interval": 0.01, "ingest_timeout": 0.2}})
        try:
            with pytest.raises(VectorStoreError, match=r"still 'in_progress' after 0\.2 s"):
                call(store, "add", ["slow text"])
        finally:
            store.close()


def test_a_server_that_is_down_is_backend_unavailable(
        kind: str, ledger: Ledger, call: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.gateway.conftest import free_port
    from tollway.vectors import VectorStore

    monkeypatch.setenv("TEST_MANAGED_VS_KEY", FAKE_KEY)
    store = VectorStore("docs", config=False, ledger=ledger, spec={
        "backend": kind, "base_url": f"http://127.0.0.1:{free_port()}/v1",
        "api_key": "env:TEST_MANAGED_VS_KEY",
        "vector_store_id": "vs_x", "options": {"search_fee_usd": 0}})
    try:
        with pytest.raises(BackendUnavailableError, match="is the server up"):
            call(store, "search", "x")
    finally:
        store.close()
