"""``vector_stores:`` in tollway.yaml: a store named there opens with its backend and
embedding alias (budgets and ledger from the same file), and bad entries are
ConfigErrors naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

import tollway
from tests.conftest import Driver
from tests.fakes.server import FakeProvider
from tests.vectors.conftest import KEY
from tollway.core.config import TollwaySettings
from tollway.core.errors import BudgetExceededError, ConfigError
from tollway.vectors import UnknownVectorStoreError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tollway.yaml"
    path.write_text(text)
    return path


def test_a_store_from_the_file_uses_its_alias_and_ledger(
        tmp_path: Path, media: FakeProvider, monkeypatch: pytest.MonkeyPatch,
        driver: Driver) -> None:
    monkeypatch.setenv("VEC_TEST_KEY", KEY)
    path = write(tmp_path, f"""
models:
  embedder: {{model: openai/text-embedding-3-small, api_base: "{media.url}",
              api_key: "env:VEC_TEST_KEY"}}
ledger: {tmp_path / 'ledger.db'}
vector_stores:
  notes:
    embedding: embedder
    path: notes.db
    chunking: {{size: 64, overlap: 8}}
""")
    store = tollway.VectorStore("notes", config=str(path))
    try:
        assert store.spec.backend == "sqlite" and store.chunker.size == 64
        run = (lambda m, *a, **k: __import__("asyncio").run(getattr(store, "a" + m)(*a, **k))) \
            if driver.is_async else (lambda m, *a, **k: getattr(store, m)(*a, **k))
        added = run("add", "The ferry to Bergen leaves at noon. " * 6)
        assert len(added.chunks) > 1 and all(len(c.text) <= 64 for c in added.chunks)
        assert (tmp_path / "notes.db").exists()  # relative to the config file
        run("search", "ferry Bergen", k=1)
        from tollway.core.stores.open import open_ledger

        ledger = open_ledger(tmp_path / "ledger.db")
        kinds = [r.kind for r in ledger.records()]  # type: ignore[attr-defined]
        ledger.close()
        assert kinds.count("retrieval") == 1 and "embedding" in kinds
    finally:
        store.close()


@pytest.mark.parametrize(("entry", "says", "line"), [
    ("  docs: {backend: chroma, embedding: e}", "needs 'url:'", 3),
    ("  docs: {backend: sqlite}", "set 'embedding:'", 3),
    ("  docs: {backend: faiss, embedding: e}", "backend", 3),
    ("  docs:\n    embedding: e\n    api_key: sk-live-123456", "must not be written", 5),
    ("  docs:\n    embedding: e\n    chunking: {size: 100, overlap: 100}", "smaller than size", 5),
    ("  docs:\n    embedding: e\n    colour: blue", "colour", 5),
])
def test_bad_entries_name_the_file_and_line(tmp_path: Path, entry: str, says: str,
                                            line: int) -> None:
    path = write(tmp_path, f"models: {{e: openai/text-embedding-3-small}}\nvector_stores:\n{entry}\n")
    with pytest.raises(ConfigError) as info:
        TollwaySettings.load(path)
    message = str(info.value)
    assert says in message and f"{path}:" in message
    assert "sk-live-123456" not in message
    assert info.value.line is not None and 3 <= info.value.line <= line


def test_an_unknown_store_names_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "vector_stores:\n  docs: {embedding: openai/text-embedding-3-small}\n")
    with pytest.raises(UnknownVectorStoreError, match=r"'wiki'.*known: docs"):
        tollway.VectorStore("wiki", config=str(path))


def test_a_budget_refusal_stops_ingestion_between_batches(
        tmp_path: Path, media: FakeProvider, monkeypatch: pytest.MonkeyPatch,
        driver: Driver) -> None:
    """Two requests allowed, batches of one text: the first two batches are embedded,
    stored and recorded; the third is refused before it is sent and nothing after it
    is stored."""
    monkeypatch.setenv("VEC_TEST_KEY", KEY)
    settings = TollwaySettings.from_dict({
        "models": {"embedder": [{"model": "openai/text-embedding-3-small",
                                 "api_base": media.url, "api_key": "env:VEC_TEST_KEY"}]},
        "budgets": [{"limit": 2, "unit": "requests", "period": "day"}],
        "budget_store": {"backend": "memory"},
        "ledger": str(tmp_path / "ledger.db"),
        "vector_stores": {"docs": {"embedding": "embedder", "batch_size": 1,
                                   "path": str(tmp_path / "docs.db")}},
    })
    store = tollway.VectorStore("docs", config=settings)
    texts = ["one apple", "two pears", "three plums", "four figs"]
    try:
        with pytest.raises(BudgetExceededError, match="limit 2 requests"):
            if driver.is_async:
                __import__("asyncio").run(store.aadd(texts, ids=["a", "b", "c", "d"]))
            else:
                store.add(texts, ids=["a", "b", "c", "d"])
        assert [c.id for c in store.list().chunks] == ["a#0", "b#0"]
        assert len([r for r in media.requests if r.path.endswith("/embeddings")]) == 2
        rows = store.ledger.records()  # type: ignore[union-attr]
        assert [(r.kind, r.status) for r in rows] == [
            ("embedding", "ok"), ("embedding", "ok"), ("embedding", "BudgetExceededError")]
        with pytest.raises(BudgetExceededError):  # search is budgeted too
            store.search("apple")
        assert len(media.requests) == 2
        refused = [r for r in store.ledger.records() if r.kind == "retrieval"]  # type: ignore[union-attr]
        assert [(r.status, r.cost_nanos) for r in refused] == [("BudgetExceededError", 0)]
    finally:
        store.close()
