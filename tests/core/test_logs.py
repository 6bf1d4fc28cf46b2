"""No known secret reaches a log record, at DEBUG: tollway's own loggers and the DEBUG
logs of the HTTP libraries tollway drives (httpcore logs response headers, and a
provider may echo the key in one), on every transport, for the six canary formats."""

from __future__ import annotations

import asyncio
import importlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import tollway
from tests.core.test_secrets import CANARIES
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tollway import errors
from tollway.core.cost.records import CallRecord
from tollway.core.logs import MASK
from tollway.core.transport import Transport

BACKENDS = [("sync", "httptools"), ("sync", "httpcore"), ("sync", "httpx"), ("async", "httptools"),
            ("async", "aiohttp"), ("async", "httpx")]


def _echoing(fake: FakeProvider, key: str) -> None:
    """A 401 whose body and headers repeat the key."""
    reply = oai.error_reply(401, f"Incorrect API key provided: {key}.")
    reply.headers["x-echoed-key"] = key
    fake.default = reply


@pytest.fixture
def transport() -> Iterator[Transport]:
    fresh = Transport()
    yield fresh
    fresh.close()


@pytest.mark.parametrize(("driver", "backend"), BACKENDS, ids=[f"{d}-{b}" for d, b in BACKENDS])
@pytest.mark.parametrize("kind", sorted(CANARIES))
def test_http_library_debug_logs_carry_no_echoed_key(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
    transport: Transport, driver: str, backend: str, kind: str,
) -> None:
    key = CANARIES[kind]
    _echoing(fake, key)
    monkeypatch.setenv(f"TOLLWAY_{driver.upper()}_TRANSPORT", backend)
    model = tollway.Model("openai_compatible/m", api_key=key, api_base=fake.url, config=False,
                          ledger=False, transport=transport)
    caplog.set_level(logging.DEBUG)

    async def acall() -> None:
        try:
            await model.acomplete("hi")
        finally:
            await transport.aclose()

    with pytest.raises(errors.AuthenticationError):
        model.complete("hi") if driver == "sync" else asyncio.run(acall())
    if backend not in ("aiohttp", "httptools"):  # httpx drives httpcore: both log each exchange
        assert any(r.name.startswith("httpcore") for r in caplog.records)
    if backend == "httpcore":
        # the response headers were logged: with the key masked out of them
        headers = [r.getMessage() for r in caplog.records
                   if "receive_response_headers.complete" in r.getMessage()]
        assert headers and all("x-echoed-key" in h and "***" in h for h in headers)
    assert key not in caplog.text
    assert all(key not in r.getMessage() for r in caplog.records)


class _FailingLedger:
    """A ledger whose database error repeats the key (a connection string in it, say)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def record(self, record: CallRecord) -> None:
        raise RuntimeError(f"could not connect with password {self.key}")

    async def arecord(self, record: CallRecord) -> None:
        self.record(record)


@pytest.mark.parametrize("driver", ["sync", "async"])
@pytest.mark.parametrize("kind", sorted(CANARIES))
def test_tollway_log_records_and_their_tracebacks_carry_no_key(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture, driver: str, kind: str
) -> None:
    key = CANARIES[kind]
    fake.default = oai.text_reply("fine")
    model = tollway.Model("openai_compatible/m", api_key=key, api_base=fake.url, config=False,
                          ledger=_FailingLedger(key))  # type: ignore[arg-type]
    caplog.set_level(logging.DEBUG)
    response = model.complete("hi") if driver == "sync" else asyncio.run(model.acomplete("hi"))
    assert response.text == "fine"  # a lost ledger row never fails a paid answer
    logged = [r for r in caplog.records if r.name == "tollway" and r.exc_info]
    assert logged, "the ledger failure was not logged"
    assert "could not connect with password ***" in caplog.text  # the traceback is there
    assert key not in caplog.text


def test_every_tollway_logger_is_made_masked() -> None:
    """tollway's loggers are made with ``tollway.core.logs.logger`` (which attaches the
    filter), never with a bare ``logging.getLogger``: checked over the sources, so a
    module whose extra is not installed here is checked too."""
    src = Path(tollway.__file__).parent
    bare = [
        f"{path.relative_to(src)}:{number}"
        for path in sorted(src.rglob("*.py")) if path.name != "logs.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"getLogger\((\"|')tollway", line) and "setLevel" not in line
    ]
    assert bare == []
    importlib.import_module("tollway.mcp.loop")  # makes the tollway.mcp logger
    for name in ("tollway", "tollway.budgets", "tollway.mcp"):
        assert MASK in logging.getLogger(name).filters, name
    for library in ("httpcore.http11", "httpcore.connection", "httpx", "aiohttp.client"):
        assert MASK in logging.getLogger(library).filters, library
