"""The fault matrix: every fault a provider's edge produces x (a single target, failover
to a healthy deployment) x (sync, async; non-streamed and streamed) x every transport
(httpcore and httpx for sync calls, aiohttp and httpx for async ones).

Each case ends in success through failover (or the transport's own fresh-connection
retry), or in the documented typed error, within ``total + 0.5`` seconds. One fake
server (module-scoped) serves every fault on its own path, so a case is a URL.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import tollway
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider, Received, Reply
from tollway import errors
from tollway.core.transport import Transport

TOTAL = 0.6
BOUND = TOTAL + 0.5
TIMEOUT = {"connect": 0.5, "read": 3.0, "total": TOTAL}
"""``read`` above ``total`` on purpose: ``total`` is what must bound each call."""

ANSWER = "healthy answer"


def _stream_request(received: Received) -> bool:
    return bool(received.json and received.json.get("stream"))


def _healthy(received: Received) -> Reply:
    if _stream_request(received):
        return oai.text_stream(["healthy", " answer"])
    return oai.text_reply(ANSWER)


def _cut(received: Received) -> Reply:
    if _stream_request(received):
        reply = oai.text_stream(["first token", " then", " the", " cut"])
        reply.cut_after = 3  # role chunk, two content chunks: the first token is out
        return reply
    body = json.dumps(oai.text_reply("a body cut in half").body).encode()
    return Reply(200, body, headers={"content-type": "application/json"}, cut_body=len(body) // 2)


def _malformed(received: Received) -> Reply:
    if _stream_request(received):
        return Reply(200, chunks=[b'data: {"choices": [{"delta": {"content": "x"\n\n'])
    # a non-streamed request answered with an event stream (a misconfigured proxy)
    return Reply(200, b'data: {"choices": []}\n\n', headers={"content-type": "text/event-stream"})


def _drip(received: Received) -> Reply:
    reply = _healthy(received)
    reply.drip = 0.05
    return reply


def _stall(received: Received) -> Reply:
    """The first bytes, then nothing for longer than ``total`` (and less than ``read``)."""
    if _stream_request(received):
        chunks = oai.text_stream(["first token", " then", " silence"]).chunks or []
        return Reply(200, chunks=[b"".join(chunks[:2]), b"".join(chunks[2:])], chunk_delay=2.0)
    body = json.dumps(oai.text_reply("half now, half later").body).encode()
    return Reply(200, body, headers={"content-type": "application/json"},
                 stall=(len(body) // 2, 2.0))


def _late_stall(received: Received) -> Reply:
    """:func:`_stall`, its first bytes sent 0.6 s late."""
    reply = _stall(received)
    reply.hang = 0.6
    return reply


def _idle_close(received: Received) -> Reply:
    """Answered on a fresh connection; a request on a reused one is dropped before any
    byte (the server's keep-alive timer fired as the request went out)."""
    return Reply(drop=True) if received.served_before else _healthy(received)


FAULTS: dict[str, Any] = {
    "rate_limit": lambda r: oai.error_reply(429, "Rate limit reached", retry_after=1),
    "server_error": lambda r: oai.error_reply(500, "The server had an error"),
    "hang": lambda r: Reply(hang=3.0, body=oai.text_reply("too late").body),
    "slow_drip": _drip,
    "stall": _stall,
    "cut_stream": _cut,
    "malformed_sse": _malformed,
    "non_json_200": lambda r: Reply(200, b"<html><body>Bad gateway</body></html>",
                                    headers={"content-type": "text/html"}),
    "idle_close": _idle_close,
    "refused": None,  # a port nobody listens on
}
EXTRA = {"late_stall": _late_stall}
"""Faults outside the matrix, for the tests of one mechanism below it."""


@dataclass(frozen=True)
class Path:
    """How a call goes: sync or async, streamed or not, and over which backend."""

    driver: str
    stream: bool
    backend: str

    @property
    def id(self) -> str:
        return f"{self.driver}-{'stream' if self.stream else 'complete'}-{self.backend}"


PATHS = [
    Path(driver, stream, backend)
    for driver, backends in (("sync", ("httptools", "httpcore", "httpx")),
                             ("async", ("httptools", "aiohttp", "httpx")))
    for stream in (False, True)
    for backend in backends
]


@dataclass(frozen=True)
class Expected:
    """A success (``error is None``), or the typed error and what its message says."""

    error: type[BaseException] | None = None
    says: str = ""


def expected(fault: str, stream: bool) -> Expected:
    """The documented outcome of ``fault`` on a single target (failover turns every
    failure before the first token into a success)."""
    if fault == "rate_limit":
        return Expected(errors.RateLimitError, "Rate limit reached")
    if fault == "server_error":
        return Expected(errors.ServerError, "The server had an error")
    if fault in ("hang", "slow_drip", "stall"):
        return Expected(errors.TimeoutError, "timeout")
    if fault == "cut_stream":
        return Expected(errors.ConnectionError, "closed mid-response")
    if fault == "malformed_sse":
        if stream:
            return Expected(errors.StreamError, "not valid JSON")
        return Expected(errors.ServerError, "not JSON")
    if fault == "non_json_200":
        return Expected(errors.StreamError if stream else errors.ServerError, "JSON" if not stream else "")
    if fault == "refused":
        return Expected(errors.ConnectionError, "could not reach")
    assert fault == "idle_close"
    return Expected()


@pytest.fixture(scope="module")
def faults() -> Iterator[FakeProvider]:
    """One server for the whole matrix: ``/fault/<name>/...`` plays that fault,
    ``/ok/...`` answers."""

    def dispatch(received: Received) -> Reply:
        parts = received.path.split("/")
        if parts[1] == "fault":
            return {**FAULTS, **EXTRA}[parts[2]](received)  # type: ignore[no-any-return]
        return _healthy(received)

    with FakeProvider() as server:
        server.default = dispatch
        yield server


@pytest.fixture(scope="module")
def refused_url() -> str:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def _base(server: FakeProvider, refused: str, fault: str) -> str:
    return refused if fault == "refused" else f"{server.url}/fault/{fault}"


def _single(base: str, transport: Transport) -> tollway.Model:
    return tollway.Model("openai_compatible/m", api_base=base, timeout=TIMEOUT, config=False,
                         ledger=False, transport=transport)


def _failover(base: str, healthy: str, transport: Transport) -> tollway.Model:
    """The faulty deployment is the cheapest, so the ``cost`` strategy tries it first."""
    config = {
        "models": {"m": [
            {"model": "openai_compatible/m", "api_base": base, "name": "faulty",
             "timeout": TIMEOUT, "price": {"input": 0.0, "output": 0.0}},
            {"model": "openai_compatible/m", "api_base": healthy, "name": "healthy",
             "timeout": TIMEOUT, "price": {"input": 1.0, "output": 1.0}},
        ]},
        "router": {"strategy": "cost", "retries": 0, "allowed_fails": 1000},
        "ledger": False,
    }
    return tollway.Model("m", config=config, transport=transport)


def _run_sync(model: tollway.Model, path: Path) -> Any:
    if not path.stream:
        return model.complete("hi")
    with model.stream("hi") as stream:
        return stream.collect()


async def _run_async(model: tollway.Model, path: Path) -> Any:
    if not path.stream:
        return await model.acomplete("hi")
    async with model.astream("hi") as stream:
        return await stream.collect()


def _call(model: tollway.Model, path: Path, transport: Transport,
          warm: tollway.Model | None) -> tuple[Any, BaseException | None, float]:
    """(response, error, seconds) of one call on ``path``. The clock starts once the
    backend exists (its first use imports the HTTP library and loads the CA bundle:
    once per process, not per call) and after the warm-up call (which only opens a
    keep-alive connection for the call to reuse)."""
    started = time.monotonic()
    result: Any = None
    error: BaseException | None = None
    try:
        if path.driver == "sync":
            transport.sync_backend()
            if warm is not None:
                warm.complete("warm up")
            started = time.monotonic()
            result = _run_sync(model, path)
        else:
            async def go() -> Any:
                nonlocal started
                try:
                    transport.async_backend()
                    if warm is not None:
                        await warm.acomplete("warm up")
                    started = time.monotonic()
                    return await _run_async(model, path)
                finally:
                    await transport.aclose()

            result = asyncio.run(go())
    except errors.TollwayError as exc:
        error = exc
    return result, error, time.monotonic() - started


@pytest.fixture(params=PATHS, ids=[p.id for p in PATHS])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    chosen: Path = request.param
    variable = "TOLLWAY_SYNC_TRANSPORT" if chosen.driver == "sync" else "TOLLWAY_ASYNC_TRANSPORT"
    monkeypatch.setenv(variable, chosen.backend)
    yield chosen


@pytest.fixture
def transport() -> Iterator[Transport]:
    fresh = Transport()  # its own pools: no connection left over from another case
    yield fresh
    fresh.close()


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_single_target_ends_in_the_documented_typed_error_within_total(
    faults: FakeProvider, refused_url: str, path: Path, transport: Transport, fault: str
) -> None:
    base = _base(faults, refused_url, fault)
    model = _single(base, transport)
    warm = _single(base, transport) if fault == "idle_close" else None
    before = len(faults.requests)
    response, error, seconds = _call(model, path, transport, warm)
    want = expected(fault, path.stream)
    assert seconds < BOUND, f"{fault} took {seconds:.2f}s (bound {BOUND}s)"
    if want.error is None:
        assert error is None, f"{fault}: {error!r}"
        assert response.text == ANSWER
        # the warm-up, the request lost on the reused connection, the one sent fresh;
        # the httptools backend skips an idle connection whose close it has already
        # read, and then sends only the fresh one (which happens first is timing)
        sent = len(faults.requests) - before
        assert sent == 3 or (path.backend == "httptools" and sent == 2), sent
        return
    assert isinstance(error, want.error), f"{fault}: expected {want.error.__name__}, got {error!r}"
    assert want.says in str(error)
    assert error.deployment and error.provider == "openai_compatible"  # type: ignore[attr-defined]
    if fault == "rate_limit":
        assert error.retry_after == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_failover_to_a_healthy_deployment_succeeds_within_total(
    faults: FakeProvider, refused_url: str, path: Path, transport: Transport, fault: str
) -> None:
    model = _failover(_base(faults, refused_url, fault), f"{faults.url}/ok", transport)
    warm = _single(_base(faults, refused_url, fault), transport) if fault == "idle_close" else None
    response, error, seconds = _call(model, path, transport, warm)
    assert seconds < BOUND, f"{fault} took {seconds:.2f}s (bound {BOUND}s)"
    want = expected(fault, path.stream)
    if fault in ("cut_stream", "stall") and path.stream:
        # a stream fails over only before its first token: this one failed after it
        assert isinstance(error, want.error), repr(error)  # type: ignore[arg-type]
        assert error.deployment == "faulty"  # type: ignore[attr-defined]
        return
    assert error is None, f"{fault}: {error!r}"
    assert response.text == ANSWER and response.deployment == (
        "faulty" if want.error is None else "healthy"
    )
    if want.error is not None:
        assert [a.deployment for a in response.attempts] == ["faulty"]
        assert response.attempts[0].error.startswith(want.error.__name__)


def test_a_body_that_stalls_after_its_first_bytes_ends_at_total_not_total_plus_read(
    faults: FakeProvider, refused_url: str, path: Path, transport: Transport
) -> None:
    """Each read may wait up to ``read`` (capped by ``total``): bytes 0.6 s in, then
    silence, would end at 0.6 + 1.0 s. The sync backends' watchdog and the async
    backends' per-chunk deadline end it at ``total`` (1.0 s)."""
    timeout = {"connect": 0.5, "read": 5.0, "total": 1.0}
    model = tollway.Model("openai_compatible/m", api_base=f"{faults.url}/fault/late_stall",
                          timeout=timeout, config=False, ledger=False, transport=transport)
    _, error, seconds = _call(model, path, transport, None)
    assert isinstance(error, errors.TimeoutError), repr(error)
    assert "total timeout of 1s" in str(error)
    assert seconds < 1.45, f"took {seconds:.2f}s"
