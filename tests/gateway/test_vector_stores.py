"""The gateway's /v1/vector_stores endpoints with the real openai SDK (sync and async
clients, per driver), over an embedded store (tollway embeds through the fake provider)
and a managed one (the loopback OpenAI vector stores server): listing, per-key
permissions (deny by default), files, search with OpenAI filters, ledger rows."""

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
from tests.gateway.conftest import UPSTREAM_KEY, RunningGateway
from tollway.vectors import VectorStore
from tollway.vectors.backends.openai import OPENAI_SEARCH_FEE_NANOS

MANAGED_KEY = "sk-test-gateway-managed-0123456789"


def _config(tmp_path: Path, fake: FakeProvider, managed_url: str) -> dict[str, Any]:
    env = "env:TOLLWAY_TEST_UPSTREAM_KEY"
    return {
        "models": {"fast": {"model": "openai/gpt-4o-mini", "api_base": fake.url, "api_key": env},
                   "emb": {"model": "openai/text-embedding-3-small", "api_base": fake.url,
                           "api_key": env}},
        "vector_stores": {
            "handbook": {"backend": "sqlite", "embedding": "emb",
                         "path": str(tmp_path / "handbook.db")},
            "managed": {"backend": "openai", "base_url": managed_url,
                        "api_key": "env:TEST_GW_MANAGED_KEY",
                        "options": {"poll_interval": 0.01}},
            "secret": {"backend": "sqlite", "embedding": "emb",
                       "path": str(tmp_path / "secret.db")},
        },
    }


def _search(driver: Driver, url: str, secret: str, store: str, query: str,
            **kw: Any) -> Any:
    if driver.is_async:
        async def go() -> Any:
            async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=secret) as client:
                return await client.vector_stores.search(store, query=query, **kw)
        return asyncio.run(go())
    with openai.OpenAI(base_url=url + "/v1", api_key=secret) as client:
        return client.vector_stores.search(store, query=query, **kw)


@pytest.fixture
def running(gateway_server: Callable[..., RunningGateway], fake: FakeProvider, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Any:
    fake.default = MediaResponder()
    monkeypatch.setenv("TEST_GW_MANAGED_KEY", MANAGED_KEY)
    with FakeVectorStores(api_key=MANAGED_KEY) as managed:
        gw = gateway_server(**_config(tmp_path, fake, managed.url))
        settings = gw.gateway.settings
        for name, texts in [("handbook", ["Travel policy: fly economy on short trips.",
                                          "The Paris office opens at nine."]),
                            ("managed", ["Oslo is the capital of Norway.",
                                         "Berlin is the capital of Germany."])]:
            with VectorStore(name, config=settings, ledger=False,
                             embedding_options={"api_key": UPSTREAM_KEY}) as store:
                store.add(texts, metadata=[{"lang": "en", "n": 1}, {"lang": "en", "n": 2}])
        yield gw, managed


def test_a_key_sees_and_searches_only_the_stores_it_names(running: Any, driver: Driver) -> None:
    gw, _ = running
    secret, _ = gw.create_key(org="acme", vector_stores=["handbook", "managed"])
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=secret)
    assert [s.id for s in client.vector_stores.list()] == ["handbook", "managed"]
    assert client.vector_stores.retrieve("managed").metadata == {"backend": "openai"}
    for hidden in ("secret", "nope"):
        with pytest.raises(openai.NotFoundError, match="No vector store found"):
            client.vector_stores.retrieve(hidden)
        with pytest.raises(openai.NotFoundError):
            _search(driver, gw.url, secret, hidden, "anything")
    plain, _ = gw.create_key(org="acme")  # deny by default
    other = openai.OpenAI(base_url=gw.url + "/v1", api_key=plain)
    assert list(other.vector_stores.list()) == []
    with pytest.raises(openai.NotFoundError):
        _search(driver, gw.url, plain, "handbook", "travel")
    files = client.vector_stores.files.list("handbook")
    by_n = {f.attributes["n"]: f for f in files}
    assert sorted(by_n) == [1, 2] and all(f.id.endswith("#0") for f in files)
    assert by_n[1].attributes["lang"] == "en" and by_n[1].attributes["chunk_index"] == 0
    first = client.vector_stores.files.list("handbook", limit=1)
    assert len(first.data) == 1 and first.has_more


def test_search_through_the_gateway_with_openai_filters_writes_retrieval_rows(
        running: Any, driver: Driver) -> None:
    gw, managed = running
    secret, key = gw.create_key(org="acme", vector_stores=["*"])
    page = _search(driver, gw.url, secret, "handbook", "When does the Paris office open?",
                   max_num_results=1)
    assert [r.content[0].text for r in page.data] == ["The Paris office opens at nine."]
    assert page.data[0].score > 0
    page = _search(driver, gw.url, secret, "managed", "capital",
                   filters={"type": "eq", "key": "n", "value": 2}, max_num_results=5)
    assert [r.content[0].text for r in page.data] == ["Berlin is the capital of Germany."]
    assert page.data[0].file_id.startswith("file-") and managed.searches == 1
    assert managed.requests[-1][2]["filters"] == {"type": "eq", "key": "n", "value": 2}
    rows = [r for r in gw.ledger_rows() if r["kind"] == "retrieval"]
    assert [r["model"] for r in rows] == ["handbook", "managed"]
    assert {r["key"] for r in rows} == {key.id} and {r["org"] for r in rows} == {"acme"}
    assert rows[1]["cost_nanos"] == OPENAI_SEARCH_FEE_NANOS and rows[0]["cost_nanos"] > 0


def test_bad_search_requests_are_openai_400s(running: Any) -> None:
    gw, _ = running
    secret, _ = gw.create_key(vector_stores=["handbook"])
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=secret)
    with pytest.raises(openai.BadRequestError, match="unsupported filter type"):
        client.vector_stores.search("handbook", query="x",
                                    filters={"type": "regex", "key": "a", "value": "b"})
    with pytest.raises(openai.BadRequestError, match="compares numbers"):
        client.vector_stores.search("handbook", query="x",
                                    filters={"type": "gt", "key": "n", "value": "one"})


def test_store_permissions_are_written_by_the_cli_and_the_admin_api(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        gateway_server: Callable[..., RunningGateway], monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    from tollway.cli import main
    from tollway.gateway.key_store import SQLiteKeyStore

    path = str(tmp_path / "cli-keys.db")
    assert main(["keys", "--store", path, "create", "--vector-stores", "docs, wiki"]) == 0
    assert main(["keys", "--store", path, "create"]) == 0
    capsys.readouterr()
    store = SQLiteKeyStore(path)
    try:
        named, plain = store.list()
    finally:
        store.close()
    assert named.vector_stores == ("docs", "wiki") and named.allows_store("wiki")
    assert plain.vector_stores == () and not plain.allows_store("docs")  # deny by default

    monkeypatch.setenv("TOLLWAY_ADMIN_KEY", "admin-secret-for-tests-0123456789")
    gw = gateway_server()
    admin = {"Authorization": "Bearer admin-secret-for-tests-0123456789"}
    made = httpx.post(gw.url + "/admin/keys", headers=admin, json={"vector_stores": "docs"})
    assert made.status_code == 201 and made.json()["vector_stores"] == ["docs"]
    assert made.json()["vector_store_writes"] == []  # reading does not grant writing
    writer = httpx.post(gw.url + "/admin/keys", headers=admin,
                        json={"vector_store_writes": ["docs", "wiki"]})
    assert writer.status_code == 201 and writer.json()["vector_store_writes"] == ["docs", "wiki"]
    bad = httpx.post(gw.url + "/admin/keys", headers=admin, json={"vector_store_writes": [2]})
    assert bad.status_code == 400 and "vector_store_writes" in bad.json()["error"]["message"]
    bad = httpx.post(gw.url + "/admin/keys", headers=admin, json={"vector_stores": [1]})
    assert bad.status_code == 400 and "vector_stores" in bad.json()["error"]["message"]


def test_a_keys_budget_stops_searches_once_spent(running: Any) -> None:
    gw, _ = running
    secret, _ = gw.create_key(vector_stores=["handbook"], budgets=["1 requests/day"])
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=secret, max_retries=0)
    assert client.vector_stores.search("handbook", query="travel policy").data
    with pytest.raises(openai.APIStatusError) as info:
        client.vector_stores.search("handbook", query="travel policy")
    assert info.value.status_code == 429 and "budget" in str(info.value).lower()
    statuses = [r["status"] for r in gw.ledger_rows() if r["kind"] == "retrieval"]
    assert statuses[0] == "ok" and statuses[-1] != "ok"  # the refused search is recorded
