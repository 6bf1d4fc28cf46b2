"""Fixtures of the vector-store tests: the fake embeddings provider (hashed bags of
words, so related texts are close), a ledger in a temp file, a Chroma server, and a
store factory over every backend that can run here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Driver
from tests.fakes.replies_media import MediaResponder
from tests.fakes.server import FakeProvider
from tests.vectors._servers import ChromaServer, chroma_command
from tollway.core.cost.ledger import Ledger
from tollway.core.stores.open import open_ledger

KEY = "sk-test-vectors-key-0123456789"
EMBED = "openai/text-embedding-3-small"
BACKENDS = ["sqlite", "chroma"]


@pytest.fixture
def media() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        server.default = MediaResponder()
        yield server


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    store = open_ledger(tmp_path / "ledger.db")
    yield store
    store.close()


@pytest.fixture(scope="session")
def chroma_server() -> Iterator[ChromaServer]:
    if chroma_command() is None:
        pytest.skip("the chroma CLI (chromadb) is not installed")
    with ChromaServer() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def spec_for(backend: str, request: pytest.FixtureRequest, tmp_path: Path,
             **extra: Any) -> dict[str, Any]:
    if backend == "sqlite":
        return {"backend": "sqlite", "embedding": EMBED, "path": str(tmp_path / "v.db"), **extra}
    server: ChromaServer = request.getfixturevalue("chroma_server")
    collection = "t" + request.node.nodeid.encode().hex()[-48:]
    return {"backend": "chroma", "embedding": EMBED, "url": server.url,
            "collection": collection, **extra}


@pytest.fixture
def make_store(backend_name: str, request: pytest.FixtureRequest, tmp_path: Path,
               media: FakeProvider, ledger: Ledger) -> Iterator[Callable[..., Any]]:
    from tollway.vectors import VectorStore

    opened: list[Any] = []

    def make(name: str = "docs", **extra: Any) -> Any:
        store = VectorStore(name, config=False, spec=spec_for(backend_name, request, tmp_path,
                                                                  **extra),
                            embedding_options={"api_key": KEY, "api_base": media.url},
                            ledger=ledger)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


class StoreDriver:
    """The sync or async twin of each store method behind one name (like ``driver``)."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    def __call__(self, store: Any, method: str, *args: Any, **kw: Any) -> Any:
        if self.driver.is_async:
            return asyncio.run(getattr(store, "a" + method)(*args, **kw))
        return getattr(store, method)(*args, **kw)


@pytest.fixture
def call(driver: Driver) -> StoreDriver:
    return StoreDriver(driver)


DOCUMENTS = [
    ("policy.txt", "Travel policy: employees fly economy on trips shorter than six hours."),
    ("oslo.txt", "Oslo is the capital of Norway and sits at the end of a fjord."),
    ("office.txt", "The Paris office opens at nine and closes at six on weekdays."),
]


@pytest.fixture
def docs_store(tmp_path: Path, media: FakeProvider, ledger: Ledger) -> Iterator[Any]:
    """A filled embedded store of :data:`DOCUMENTS` (one chunk per file)."""
    from tollway.vectors import VectorStore

    store = VectorStore("handbook", config=False,
                        spec={"backend": "sqlite", "embedding": EMBED,
                              "path": str(tmp_path / "handbook.db")},
                        embedding_options={"api_key": KEY, "api_base": media.url},
                        ledger=ledger)
    store.add(files=[(name, text) for name, text in DOCUMENTS])
    yield store
    store.close()
