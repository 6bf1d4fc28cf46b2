"""A backend that cannot do its part is a BackendUnavailableError saying what to do,
and a search that failed after its query was embedded is still a priced ledger row."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.fakes.server import FakeProvider
from tests.vectors.conftest import EMBED, KEY
from tollway.core.cost.ledger import Ledger
from tollway.vectors import BackendUnavailableError, VectorStore


def test_a_chroma_server_that_is_down_is_named_with_how_to_start_one(
        media: FakeProvider, ledger: Ledger) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = VectorStore("wiki", config=False,
                        spec={"backend": "chroma", "url": f"http://127.0.0.1:{port}",
                              "embedding": EMBED, "timeout": 5},
                        embedding_options={"api_key": KEY, "api_base": media.url},
                        ledger=ledger)
    try:
        with pytest.raises(BackendUnavailableError, match="chroma run") as info:
            store.search("anything")
        assert f"127.0.0.1:{port}" in str(info.value) and info.value.store == "wiki"
        (row,) = [r for r in ledger.records() if r.kind == "retrieval"]  # type: ignore[attr-defined]
        assert row.status == "BackendUnavailableError"
        assert row.cost_nanos and row.cost_nanos > 0  # the query embedding was paid for
    finally:
        store.close()


def test_an_unwritable_sqlite_path_says_which_file(tmp_path: Path, media: FakeProvider,
                                                   ledger: Ledger) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = VectorStore("docs", config=False,
                        spec={"backend": "sqlite", "embedding": EMBED,
                              "path": str(blocker / "v.db")},
                        embedding_options={"api_key": KEY, "api_base": media.url},
                        ledger=ledger)
    try:
        with pytest.raises(BackendUnavailableError, match=r"cannot open .*v\.db"):
            store.list()
    finally:
        store.close()
