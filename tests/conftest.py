"""Shared fixtures: loopback fake providers, started and stopped by the test that uses them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.server import FakeProvider


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def _session_default_ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Models and MCP clients record by default: during the tests the default ledger
    is a temp file (children inherit it), never the developer's own
    ``~/.local/share/tollway/ledger.db``. Tests that check the default path unset it."""
    if os.environ.get("TOLLWAY_LEDGER"):
        yield
        return
    path = tmp_path_factory.mktemp("default-ledger") / "ledger.db"
    os.environ["TOLLWAY_LEDGER"] = str(path)
    try:
        yield
    finally:
        os.environ.pop("TOLLWAY_LEDGER", None)


@pytest.fixture
def default_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[Any]]:
    """A fresh default ledger (the one a Model and an MCP client write to unless told
    otherwise) in a temp file, with no tollway.yaml to find (cwd is a temp dir); returns
    a reader of its rows (the process's shared ledger, as the writers see it)."""
    monkeypatch.setenv("TOLLWAY_LEDGER", str(tmp_path / "default-ledger.db"))
    monkeypatch.delenv("TOLLWAY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    def rows() -> list[Any]:
        from tollway.core.stores.open import shared_ledger

        return shared_ledger().records()  # type: ignore[attr-defined, no-any-return]

    return rows


def corpus_dir() -> Path:
    """The recorded provider traffic (../shared/corpus/A beside the repo, or
    TOLLWAY_CORPUS_DIR); tests that need it skip when it is absent."""
    env = os.environ.get("TOLLWAY_CORPUS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "A"


# --------------------------------------------------------------------------- drivers


@dataclass
class Collected:
    """A stream read inside its ``with`` block: the events as they arrived and the
    stream's ``response`` once the block closed (None if it never ended)."""

    events: list[Any]
    response: Any


@dataclass(frozen=True)
class Driver:
    """One call path, sync or async, behind one set of methods, so a behaviour test is
    written once and runs on both (``driver`` fixture). The async side is driven from
    synchronous test code with ``asyncio.run`` (a fresh event loop per call, as a
    script would); ``arun_tools`` is for async tests whose MCP client lives on the
    test's own loop (the sync loop then runs in a worker thread and hops to it)."""

    name: str

    @property
    def is_async(self) -> bool:
        return self.name == "async"

    def complete(self, model: Any, messages: Any, /, **kw: Any) -> Any:
        if self.is_async:
            return asyncio.run(model.acomplete(messages, **kw))
        return model.complete(messages, **kw)

    def embed(self, model: Any, texts: Any, /, **kw: Any) -> Any:
        if self.is_async:
            return asyncio.run(model.aembed(texts, **kw))
        return model.embed(texts, **kw)

    def generate_image(self, model: Any, prompt: str, /, **kw: Any) -> Any:
        if self.is_async:
            return asyncio.run(model.agenerate_image(prompt, **kw))
        return model.generate_image(prompt, **kw)

    def edit_image(self, model: Any, image: Any, prompt: str, /, **kw: Any) -> Any:
        if self.is_async:
            return asyncio.run(model.aedit_image(image, prompt, **kw))
        return model.edit_image(image, prompt, **kw)

    def stream_collect(self, model: Any, messages: Any, /, *, into: list[Any] | None = None,
                       take: int | None = None, until: Callable[[Any], bool] | None = None,
                       **kw: Any) -> Collected:
        """Stream and read every event, or close the stream early: after ``take`` events,
        or after the first event ``until`` accepts. Events are appended to ``into`` as
        they arrive, so a test expecting the stream to raise still sees what came first."""
        events: list[Any] = [] if into is None else into

        def enough(event: Any) -> bool:
            events.append(event)
            return (take is not None and len(events) >= take) or (
                until is not None and until(event)
            )

        if self.is_async:
            async def read() -> Any:
                async with model.astream(messages, **kw) as stream:
                    async for event in stream:
                        if enough(event):
                            break
                return stream.response

            return Collected(events, asyncio.run(read()))
        with model.stream(messages, **kw) as stream:
            for event in stream:
                if enough(event):
                    break
        return Collected(events, stream.response)

    def route(self, router: Any, ctx: Any, attempt: Callable[[Any], Any]) -> Any:
        """``Router.run`` with a sync attempt, or ``Router.arun`` with the same attempt
        behind a coroutine that yields to the loop first."""
        if not self.is_async:
            return router.run(ctx, attempt)

        async def aattempt(deployment: Any) -> Any:
            await asyncio.sleep(0)
            return attempt(deployment)

        return asyncio.run(router.arun(ctx, aattempt))

    def reserve(self, guard: Any, ctx: Any, deployment: Any) -> Any:
        """A Guard's reservation (the budgets seam the Model calls): ``reserve`` or
        ``areserve``; settle and release the hold with :meth:`settle` / :meth:`release`."""
        if self.is_async:
            return asyncio.run(guard.areserve(ctx, deployment))
        return guard.reserve(ctx, deployment)

    def settle(self, hold: Any, usage: Any, cost_nanos: int | None) -> None:
        if self.is_async:
            asyncio.run(hold.asettle(usage, cost_nanos))
        else:
            hold.settle(usage, cost_nanos)

    def release(self, hold: Any) -> None:
        if self.is_async:
            asyncio.run(hold.arelease())
        else:
            hold.release()

    def run_tools(self, model: Any, messages: Any, /, **kw: Any) -> Any:
        """The tool loop from synchronous code: ``run_tools``, or ``arun_tools`` on a
        fresh loop (its MCP client must then be a SyncMCPClient or live on a thread)."""
        from tollway.mcp import arun_tools, run_tools

        if self.is_async:
            return asyncio.run(arun_tools(model, messages, **kw))
        return run_tools(model, messages, **kw)

    async def arun_tools(self, model: Any, messages: Any, /, **kw: Any) -> Any:
        """The tool loop from an async test: ``arun_tools`` on the test's loop, or the
        sync ``run_tools`` in a worker thread (context copied), whose tool calls hop to
        the MCP client's loop, which is the test's."""
        from tollway.mcp import arun_tools, run_tools

        if self.is_async:
            return await arun_tools(model, messages, **kw)
        return await asyncio.to_thread(run_tools, model, messages, **kw)


@pytest.fixture(params=["sync", "async"])
def driver(request: pytest.FixtureRequest) -> Driver:
    return Driver(request.param)


# --------------------------------------------------------------------------- telemetry


@pytest.fixture
def otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """tollway telemetry on, into an in-memory OpenTelemetry SDK (``tests/fakes/otel.py``)."""
    from tests.fakes.otel import otel_session

    with otel_session(monkeypatch) as session:
        yield session
