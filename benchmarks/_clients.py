"""The clients under test, each reduced to the same few callables (worker side).

A client id names one way of making the call the benchmark makes: ``httpx``,
``httpx-pool1024``, ``aiohttp``, ``httptools`` (raw asyncio + httptools),
``httpx-aiohttp``, ``openai``, ``litellm`` and
``tollway`` with options (``tollway+ledger``, ``tollway+budgets-sqlite``,
``tollway-aiohttp``...). Every client sends the same JSON to the same fake server and
parses the answer into a usable object; the raw clients do the least work that still
gives the caller the parsed JSON (``json.loads``), so "added time" is what a library
costs on top of doing it by hand.

Everything heavy is imported inside the functions: the worker that forks these only
pre-imports its own client's library.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import API_KEY, HEADERS, LITELLM_MODEL, MODEL, PROMPT, TOLLWAY_MODEL

SyncCall = Callable[[], Any]
AsyncCall = Callable[[], Awaitable[Any]]
StreamResult = tuple[int, int]
"""(nanoseconds until the first text chunk, number of text chunks)."""

LABELS = {
    "httpx": "raw httpx",
    "httpcore": "raw httpcore",
    "httpx-pool1024": "raw httpx (pool 1024/512)",
    "aiohttp": "raw aiohttp",
    "httptools": "raw httptools (asyncio / blocking socket)",
    "httpx-aiohttp": "httpx-aiohttp",
    "openai": "openai SDK",
    "litellm": "litellm",
    "tollway": "tollway",
    "tollway-httpx": "tollway [httpx transport]",
    "tollway-aiohttp": "tollway [aiohttp transport]",
    "tollway-aiohttp+ledger+budgets-sqlite": "tollway [aiohttp] + ledger + budgets (sqlite)",
    "tollway-httptools": "tollway [httptools transport]",
    "tollway-httptools+ledger+budgets-sqlite": "tollway [httptools] + ledger + budgets (sqlite)",
    "tollway+ledger": "tollway + ledger (sqlite)",
    "tollway+otel": "tollway + OpenTelemetry on (SDK, spans batched to a discarding exporter)",
    "tollway+budgets-memory": "tollway + budgets (memory)",
    "tollway+budgets-sqlite": "tollway + budgets (sqlite)",
    "tollway+budgets-redis": "tollway + budgets (redis)",
    "tollway+ledger+budgets-sqlite": "tollway + ledger + budgets (sqlite)",
}


def label(client: str) -> str:
    return LABELS.get(client, client)


def family(client: str) -> str:
    """The worker (pre-imported library) a client runs in (``lib:variant`` ids too)."""
    client = client.partition(":")[0]
    if client.startswith("tollway"):
        return "tollway"
    if client == "httpx-aiohttp":
        return "httpx_aiohttp"
    if client.startswith("httpx") or client == "httpcore":
        return "httpx"  # httpcore comes with httpx
    return client


def preload(family_name: str) -> None:
    """What a worker imports once before forking: the library a user would import."""
    if family_name == "litellm":
        import litellm

        litellm.suppress_debug_info = True
        litellm.set_verbose = False
        litellm.success_callback = []
        litellm.failure_callback = []
        litellm.callbacks = []
    elif family_name == "openai":
        import openai  # noqa: F401
    elif family_name == "httpx":
        import httpx  # noqa: F401
    elif family_name == "aiohttp":
        import aiohttp  # noqa: F401
    elif family_name == "httptools":
        import _raw_httptools  # noqa: F401
    elif family_name == "httpx_aiohttp":
        import httpx_aiohttp  # noqa: F401
    elif family_name == "tollway":
        import tollway  # noqa: F401
    else:
        raise ValueError(f"unknown worker family {family_name!r}")


def _asked_of_tollway(variable: str, helper: str) -> str:
    """What tollway's transport picks with ``variable`` unset (asked of tollway itself;
    its helpers are private, so an unexpected shape is reported)."""
    saved = os.environ.pop(variable, None)
    try:
        from tollway.core import transport

        return str(getattr(transport, helper)())
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"
    finally:
        if saved is not None:
            os.environ[variable] = saved


def tollway_default_transport() -> str:
    """The async transport tollway picks with TOLLWAY_ASYNC_TRANSPORT unset."""
    return _asked_of_tollway("TOLLWAY_ASYNC_TRANSPORT", "_async_backend")


def sync_default_transport() -> str:
    """The sync transport tollway picks with TOLLWAY_SYNC_TRANSPORT unset."""
    return _asked_of_tollway("TOLLWAY_SYNC_TRANSPORT", "_sync_backend")


def sync_same_stack(client: str, default_transport: str) -> str:
    """The raw sync client on the stack a sync tollway client uses: raw httptools on a
    blocking socket, raw httpcore, or raw httpx (``tollway-httpx``)."""
    if client == "tollway-httpx":
        return "httpx"
    return "httptools" if default_transport == "httptools" else "httpcore"


def same_stack(client: str, default_transport: str) -> str:
    """The raw client on the HTTP stack a tollway client uses (its fair baseline):
    raw httpx for tollway's httpx transport; raw asyncio + httptools for its httptools
    transport; for its aiohttp transport raw aiohttp when tollway drives aiohttp itself
    (``tollway.core.transport.aiohttp_backend``), else httpx-aiohttp (the adapter
    earlier builds used)."""
    import importlib.util

    opts = TollwayOptions.parse(client)
    transport = opts.transport or default_transport
    if transport == "httptools":
        return "httptools"
    if transport != "aiohttp":
        return "httpx"
    native = importlib.util.find_spec("tollway.core.transport.aiohttp_backend") is not None
    return "aiohttp" if native else "httpx-aiohttp"


# --------------------------------------------------------------------------- tollway options


@dataclass(frozen=True, slots=True)
class TollwayOptions:
    ledger: bool = False
    budgets: str | None = None
    """Budget store: memory | sqlite | redis (None: no budgets)."""
    transport: str | None = None
    """Transport forced through TOLLWAY_ASYNC_TRANSPORT (None: tollway's defaults);
    ``httpx`` forces the sync one too (TOLLWAY_SYNC_TRANSPORT)."""
    otel: bool = False
    """Telemetry on (``+otel``); every other tollway client runs with it off."""

    @classmethod
    def parse(cls, client: str) -> TollwayOptions:
        ledger = "+ledger" in client
        budgets = None
        for store in ("memory", "sqlite", "redis"):
            if f"+budgets-{store}" in client:
                budgets = store
        transport = None
        if client.startswith("tollway-"):
            transport = client.removeprefix("tollway-").split("+")[0]
        return cls(ledger, budgets, transport, "+otel" in client)


REDIS_URL = "redis://127.0.0.1:6379/0"
GENEROUS_BUDGET = [{"name": "bench-day", "limit": 1000, "period": "day"}]
"""A USD budget on every call that is never reached: the benchmark measures the cost of
reserving and settling, not of denying."""


def budget_guard(store: str, tmp: Path, policies: list[dict[str, Any]],
                 sqlite_file: Path | None = None) -> Any:
    """A tollway Budgets guard over a fresh store of the given kind (SQLite: in
    ``sqlite_file`` when given, the ledger's file, as tollway lays them out by default)."""
    from tollway.core.cost.budgets import Budgets

    if store == "memory":
        from tollway.core.cost.budgets.memory import MemoryBudgetStore

        backend: Any = MemoryBudgetStore()
    elif store == "sqlite":
        from tollway.core.stores.sqlite_budgets import SQLiteBudgetStore

        backend = SQLiteBudgetStore(sqlite_file or tmp / f"budgets-{os.getpid()}.db")
    elif store == "redis":
        from tollway.core.stores.redis_budgets import RedisBudgetStore

        backend = RedisBudgetStore(REDIS_URL, prefix=f"tollway-bench-{os.getpid()}-{time.time_ns()}:")
        _REDIS_STORES.append(backend)
    else:
        raise ValueError(f"unknown budget store {store!r}")
    return Budgets(policies, store=backend)


_REDIS_STORES: list[Any] = []


def cleanup() -> None:
    """Delete the Redis keys this process's budget stores created (only theirs)."""
    if not _REDIS_STORES:
        return
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        for store in _REDIS_STORES:
            keys = list(client.scan_iter(match=store.prefix + "*"))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def tollway_model(client: str, url: str, tmp: Path, **model_options: Any) -> Any:
    """A tollway Model as the client id describes (ledger file and budget store fresh in
    ``tmp``). Direct ``provider/model`` target: no config file is involved."""
    import tollway

    opts = TollwayOptions.parse(client)
    if opts.transport:
        os.environ["TOLLWAY_ASYNC_TRANSPORT"] = opts.transport
        if opts.transport == "httpx":
            os.environ["TOLLWAY_SYNC_TRANSPORT"] = "httpx"
    ledger_file = tmp / f"ledger-{os.getpid()}.db"
    ledger: Any = str(ledger_file) if opts.ledger else False
    guards = [budget_guard(opts.budgets, tmp, GENEROUS_BUDGET,
                           ledger_file if opts.ledger else None)] if opts.budgets else []
    if opts.otel:
        enable_sdk_telemetry()
    return tollway.Model(
        TOLLWAY_MODEL, api_base=url, api_key=API_KEY, ledger=ledger, guards=guards,
        **model_options,
    )


def enable_sdk_telemetry() -> None:
    """tollway telemetry into a real SDK pipeline, as a deployment would run it: a
    TracerProvider with a BatchSpanProcessor (its exporter drops the spans, so no
    network is timed) and a MeterProvider whose histograms aggregate in memory."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    import tollway

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    os.environ.pop("OTEL_SDK_DISABLED", None)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))
    tollway.enable_telemetry(tracer_provider=tracer_provider,
                             meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]))


# --------------------------------------------------------------------------- bodies

BODY = {"model": MODEL, "messages": PROMPT}
STREAM_BODY = {**BODY, "stream": True, "stream_options": {"include_usage": True}}


def _encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- non-streamed


def sync_call(client: str, url: str, tmp: Path) -> SyncCall:
    """One non-streamed call, blocking."""
    target = f"{url}/chat/completions"
    if client.startswith("httpx"):
        import httpx

        http = httpx.Client()
        body = _encoded(BODY)
        return lambda: json.loads(http.post(target, content=body, headers=HEADERS).content)
    if client == "httpcore":
        import httpcore

        pool = httpcore.ConnectionPool()
        core_url, core_headers, core_body = httpcore.URL(target), list(HEADERS.items()), _encoded(BODY)
        return lambda: json.loads(
            pool.request("POST", core_url, headers=core_headers, content=core_body).content
        )
    if client == "httptools":
        from _raw_httptools import RawHttptoolsSync

        bare = RawHttptoolsSync(target, HEADERS)
        raw_body = _encoded(BODY)
        return lambda: json.loads(bare.post(raw_body))
    if client == "openai":
        import openai

        oai = openai.OpenAI(base_url=url, api_key=API_KEY)
        return lambda: oai.chat.completions.create(model=MODEL, messages=PROMPT)  # type: ignore[arg-type]
    if client == "litellm":
        import litellm

        return lambda: litellm.completion(
            model=LITELLM_MODEL, messages=PROMPT, api_base=url, api_key=API_KEY
        )
    if client.startswith("tollway"):
        model = tollway_model(client, url, tmp)
        return lambda: model.complete(PROMPT)
    raise ValueError(f"{client} has no sync call")


def async_call(client: str, url: str, tmp: Path) -> AsyncCall:
    """One non-streamed call, awaited. Call this inside the running event loop (async
    clients bind to their loop)."""
    target = f"{url}/chat/completions"
    body = _encoded(BODY)
    if client == "httpx":
        import httpx

        ahttp = httpx.AsyncClient()  # the default pool: what most code gets

        async def call() -> Any:
            return json.loads((await ahttp.post(target, content=body, headers=HEADERS)).content)

        return call
    if client == "httpx-pool1024":
        import httpx

        big = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1024, max_keepalive_connections=512)
        )

        async def call_big() -> Any:
            return json.loads((await big.post(target, content=body, headers=HEADERS)).content)

        return call_big
    if client == "httpx-aiohttp":
        import httpx
        from httpx_aiohttp import HttpxAiohttpClient

        hx = HttpxAiohttpClient(
            limits=httpx.Limits(max_connections=1024, max_keepalive_connections=512)
        )

        async def call_hx() -> Any:
            return json.loads((await hx.post(target, content=body, headers=HEADERS)).content)

        return call_hx
    if client == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024))

        async def call_aio() -> Any:
            async with session.post(target, data=body, headers=HEADERS) as resp:
                return json.loads(await resp.read())

        return call_aio
    if client == "httptools":
        from _raw_httptools import RawHttptools

        raw = RawHttptools(target, HEADERS)

        async def call_raw() -> Any:
            return json.loads(await raw.post(body))

        return call_raw
    if client == "openai":
        import openai

        aoai = openai.AsyncOpenAI(base_url=url, api_key=API_KEY)
        return lambda: aoai.chat.completions.create(model=MODEL, messages=PROMPT)  # type: ignore[arg-type]
    if client == "litellm":
        import litellm

        return lambda: litellm.acompletion(
            model=LITELLM_MODEL, messages=PROMPT, api_base=url, api_key=API_KEY
        )
    if client.startswith("tollway"):
        model = tollway_model(client, url, tmp)
        return lambda: model.acomplete(PROMPT)
    raise ValueError(f"{client} has no async call")


# --------------------------------------------------------------------------- streamed


def sync_stream(client: str, url: str, tmp: Path) -> Callable[[], StreamResult]:
    """One streamed call read to its end; returns (ns to first text chunk, text chunks)."""
    target = f"{url}/chat/completions"
    clock = time.perf_counter_ns
    if client.startswith("httpx"):
        import httpx

        http = httpx.Client()
        body = _encoded(STREAM_BODY)

        def raw() -> StreamResult:
            t0 = clock()
            first, count = 0, 0
            with http.stream("POST", target, content=body, headers=HEADERS) as resp:
                for line in resp.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    choices = chunk.get("choices")
                    if choices and choices[0]["delta"].get("content"):
                        count += 1
                        if not first:
                            first = clock() - t0
            return first, count

        return raw
    if client == "openai":
        import openai

        oai = openai.OpenAI(base_url=url, api_key=API_KEY)

        def sdk() -> StreamResult:
            t0 = clock()
            first, count = 0, 0
            stream = oai.chat.completions.create(
                model=MODEL, messages=PROMPT, stream=True,  # type: ignore[arg-type]
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    count += 1
                    if not first:
                        first = clock() - t0
            return first, count

        return sdk
    if client == "litellm":
        import litellm

        def lite() -> StreamResult:
            t0 = clock()
            first, count = 0, 0
            stream = litellm.completion(
                model=LITELLM_MODEL, messages=PROMPT, api_base=url, api_key=API_KEY,
                stream=True, stream_options={"include_usage": True},
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    count += 1
                    if not first:
                        first = clock() - t0
            return first, count

        return lite
    if client.startswith("tollway"):
        from tollway import TextDelta

        model = tollway_model(client, url, tmp)

        def tw() -> StreamResult:
            t0 = clock()
            first, count = 0, 0
            with model.stream(PROMPT) as stream:
                for event in stream:
                    if isinstance(event, TextDelta):
                        count += 1
                        if not first:
                            first = clock() - t0
            return first, count

        return tw
    raise ValueError(f"{client} has no sync stream")


def _is_text_chunk(line: bytes) -> bool:
    """Whether one SSE line (no line ending) is a chunk with text: parsed as a raw
    client's caller would."""
    if not line.startswith(b"data: ") or line == b"data: [DONE]":
        return False
    choices = json.loads(line[6:]).get("choices")
    return bool(choices and choices[0]["delta"].get("content"))


def async_stream(client: str, url: str, tmp: Path) -> Callable[[], Awaitable[StreamResult]]:
    """The async twin of :func:`sync_stream` (call inside the running loop)."""
    target = f"{url}/chat/completions"
    clock = time.perf_counter_ns
    if client in ("httpx", "httpx-aiohttp"):
        import httpx

        if client == "httpx":
            ahttp = httpx.AsyncClient()
        else:
            from httpx_aiohttp import HttpxAiohttpClient

            ahttp = HttpxAiohttpClient()
        body = _encoded(STREAM_BODY)

        async def raw() -> StreamResult:
            t0 = clock()
            first, count = 0, 0
            async with ahttp.stream("POST", target, content=body, headers=HEADERS) as resp:
                async for line in resp.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    choices = chunk.get("choices")
                    if choices and choices[0]["delta"].get("content"):
                        count += 1
                        if not first:
                            first = clock() - t0
            return first, count

        return raw
    if client == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024))
        body = _encoded(STREAM_BODY)

        async def raw_aio() -> StreamResult:
            t0 = clock()
            first, count = 0, 0
            async with session.post(target, data=body, headers=HEADERS) as resp:
                async for raw_line in resp.content:
                    if _is_text_chunk(raw_line.rstrip(b"\r\n")):
                        count += 1
                        if not first:
                            first = clock() - t0
            return first, count

        return raw_aio
    if client == "httptools":
        from _raw_httptools import RawHttptools

        bare = RawHttptools(target, HEADERS)
        body = _encoded(STREAM_BODY)

        async def raw_ht() -> StreamResult:
            t0 = clock()
            first, count = 0, 0
            pending = b""
            async for data in bare.stream(body):
                *lines, pending = (pending + data).split(b"\n")
                for raw_line in lines:
                    if _is_text_chunk(raw_line.rstrip(b"\r")):
                        count += 1
                        if not first:
                            first = clock() - t0
            return first, count

        return raw_ht
    if client == "openai":
        import openai

        aoai = openai.AsyncOpenAI(base_url=url, api_key=API_KEY)

        async def sdk() -> StreamResult:
            t0 = clock()
            first, count = 0, 0
            stream = await aoai.chat.completions.create(
                model=MODEL, messages=PROMPT, stream=True,  # type: ignore[arg-type]
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    count += 1
                    if not first:
                        first = clock() - t0
            return first, count

        return sdk
    if client == "litellm":
        import litellm

        async def lite() -> StreamResult:
            t0 = clock()
            first, count = 0, 0
            stream = await litellm.acompletion(
                model=LITELLM_MODEL, messages=PROMPT, api_base=url, api_key=API_KEY,
                stream=True, stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    count += 1
                    if not first:
                        first = clock() - t0
            return first, count

        return lite
    if client.startswith("tollway"):
        from tollway import TextDelta

        model = tollway_model(client, url, tmp)

        async def tw() -> StreamResult:
            t0 = clock()
            first, count = 0, 0
            async with model.astream(PROMPT) as stream:
                async for event in stream:
                    if isinstance(event, TextDelta):
                        count += 1
                        if not first:
                            first = clock() - t0
            return first, count

        return tw
    raise ValueError(f"{client} has no async stream")


# --------------------------------------------------------------------------- warm imports

SCOUTS: dict[str, list[str]] = {
    "tollway": ["tollway+ledger+budgets-sqlite", "tollway-httpx", "tollway-aiohttp"],
    "litellm": ["litellm"],
    "openai": ["openai"],
    "httpx": ["httpx"],
    "aiohttp": ["aiohttp"],
    "httpx_aiohttp": ["httpx-aiohttp"],
}


def exercise(family_name: str, url: str, tmp: Path) -> None:
    """Make every kind of call this family's clients make, once (in a throwaway child
    process), so the worker can pre-import the modules those calls import lazily.
    Nothing else carries over to the jobs: only module imports."""
    import asyncio
    import contextlib

    for client in SCOUTS[family_name]:
        with contextlib.suppress(ValueError):
            sync_call(client, url, tmp)()
        with contextlib.suppress(ValueError):
            sync_stream(client, url, tmp)()

        async def both(client: str = client) -> None:
            with contextlib.suppress(ValueError):
                await async_call(client, url, tmp)()
            with contextlib.suppress(ValueError):
                await async_stream(client, url, tmp)()

        asyncio.run(both())
    if family_name == "litellm":
        from litellm import BudgetManager, Router  # noqa: F401  (router / overshoot cases)
    if family_name == "tollway":
        with contextlib.suppress(ImportError):
            import tollway.core.config
            import tollway.core.routing
        with contextlib.suppress(ImportError):
            import redis
            import redis.asyncio  # noqa: F401

            import tollway.core.stores.redis_budgets  # noqa: F401
