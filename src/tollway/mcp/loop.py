"""The tool loop: call the model with the MCP tools, run what it asks for, repeat.

``await tollway.mcp.arun_tools(model, messages, mcp=client)`` injects the
catalog's tools into each request, calls the model, executes every tool call of the
answer (concurrently), appends the results and calls again, until the model answers
without tool calls or ``max_rounds`` model calls were made (:class:`ToolLoopError`
with the transcript).

What the caller can rely on:

- Every round is an ordinary Model call, so each is a ledger row and each is checked
  against budgets and allowed hours; every executed tool call is a ledger row too
  (kind "tool": server, tool, latency, status, configured price) in the model's
  ledger (the MCP client's when the model has none). All of them share one trace id
  (the loop runs under :func:`tollway.core.tracing.trace`).
- A failing tool never crashes the loop by default (``on_tool_error="return"``): an
  ``isError`` result, a JSON-RPC error, a timeout, a disconnected server, arguments that
  are not valid JSON, an unknown tool name and a call the approval hook denied all go
  back to the model as ``ToolResult(is_error=True)``, so it can correct itself.
  ``on_tool_error="raise"`` stops the loop with ToolLoopError instead.
- The approval hook (``on_tool_call``) runs for every call before any of the round's
  calls starts, in the order the model gave them (human-in-the-loop prompts never
  interleave); approved calls then run concurrently.

The round logic lives in :class:`_ToolLoop` (no I/O); the sync, async and streaming
drivers below differ only in how they wait.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

from tollway.core.errors import BadRequestError, ToolArgumentsError, ToolLoopError
from tollway.core.inputs import to_messages, to_tool_choice
from tollway.core.telemetry import switch as _telemetry
from tollway.core.types import (
    NANOS_PER_USD,
    Message,
    Response,
    StreamEnd,
    StreamEvent,
    Tool,
    ToolCall,
    ToolResult,
    Usage,
)
from tollway.mcp.errors import MCPTimeoutError, MCPToolDenied, MCPUnknownToolError
from tollway.mcp.loop_trace import LoopScope, loop_scope
from tollway.mcp.rows import arecord, tool_record
from tollway.mcp.tools import FunctionTool, MCPTool, ToolOutput, function_tool, value_to_output

if TYPE_CHECKING:
    from tollway.core.cost.ledger import Ledger
    from tollway.core.model import Model
    from tollway.mcp.client import MCPClient, SyncMCPClient

__all__ = [
    "Approval",
    "ApproveHook",
    "OnToolError",
    "RoundEnd",
    "ToolCallFinished",
    "ToolCallRequest",
    "ToolCallStarted",
    "ToolLoopEnd",
    "ToolLoopEvent",
    "ToolLoopResult",
    "ToolRun",
    "arun_tools",
    "astream_tools",
    "run_tools",
]

T = TypeVar("T")
OnToolError: TypeAlias = Literal["return", "raise"]
Approval: TypeAlias = "bool | str | Mapping[str, Any] | None"
ApproveHook: TypeAlias = Callable[["ToolCallRequest"], Any]
"""Called before a tool call runs; returns True / None to run it, False to deny it, a
string to deny it with that message to the model, or a dict of arguments to run it with
instead (may be async in the async loop)."""
DENIED = "The user did not allow this tool call."


# --------------------------------------------------------------------------- values


@dataclass(slots=True)
class ToolCallRequest:
    """What the approval hook sees: the model's call and the tool it would run."""

    call: ToolCall
    name: str
    """The exposed name the model used."""
    arguments: dict[str, Any]
    server: str | None
    """The MCP server, or None for a local function tool."""
    tool: str
    """The tool's own name on its server (the function name for a local tool)."""
    mcp_tool: MCPTool | None = None


@dataclass(slots=True)
class ToolRun:
    """One tool call of the loop and what came of it."""

    round: int
    call: ToolCall
    output: ToolOutput
    result: ToolResult
    server: str | None = None
    tool: str | None = None
    approved: bool = True


@dataclass(slots=True)
class ToolLoopResult:
    """The outcome of a tool loop: the final Response, the whole transcript (the input
    messages, then every assistant message and tool-result message), every round's
    Response, every tool call, and the totals over all rounds."""

    response: Response
    messages: list[Message]
    responses: list[Response]
    tool_runs: list[ToolRun]
    trace_id: str

    @property
    def text(self) -> str:
        return self.response.text

    @property
    def rounds(self) -> int:
        return len(self.responses)

    @property
    def usage(self) -> Usage:
        """Token usage summed over every round (``requests`` = number of rounds)."""
        total = Usage(requests=0)
        for response in self.responses:
            total = total + response.usage
        return total

    @property
    def model_cost_nanos(self) -> int | None:
        """Model cost over every round; None when any round's model is unpriced."""
        costs = [r.cost_nanos for r in self.responses]
        return None if any(c is None for c in costs) else sum(c for c in costs if c is not None)

    @property
    def tool_cost_nanos(self) -> int:
        """The configured price of every executed MCP tool call."""
        return sum(run.output.cost_nanos for run in self.tool_runs)

    @property
    def cost_nanos(self) -> int | None:
        model = self.model_cost_nanos
        return None if model is None else model + self.tool_cost_nanos

    @property
    def cost(self) -> Decimal | None:
        """Total cost in USD (models + priced tool calls); None if a round was unpriced."""
        nanos = self.cost_nanos
        return None if nanos is None else Decimal(nanos) / NANOS_PER_USD


# --- streaming events


@dataclass(slots=True)
class RoundEnd:
    """A model round finished (its StreamEnd): ``response`` is that round's Response."""

    round: int
    response: Response


@dataclass(slots=True)
class ToolCallStarted:
    round: int
    call: ToolCall
    server: str | None
    tool: str | None


@dataclass(slots=True)
class ToolCallFinished:
    round: int
    run: ToolRun


@dataclass(slots=True)
class ToolLoopEnd:
    """The last event: the loop's result (same as :func:`arun_tools` returns)."""

    result: ToolLoopResult


ToolLoopEvent: TypeAlias = StreamEvent | RoundEnd | ToolCallStarted | ToolCallFinished | ToolLoopEnd


# --------------------------------------------------------------------------- the rounds


@dataclass(slots=True)
class _Planned:
    """A call after argument parsing, lookup and approval: either ``output`` is already
    known (an error result) or ``target`` is to be run with ``arguments``."""

    call: ToolCall
    arguments: dict[str, Any]
    target: MCPTool | FunctionTool | None = None
    output: ToolOutput | None = None
    approved: bool = True

    @property
    def server(self) -> str | None:
        return self.target.server if isinstance(self.target, MCPTool) else None

    @property
    def tool(self) -> str | None:
        if isinstance(self.target, MCPTool):
            return self.target.name
        return self.target.name if self.target is not None else None


class _ToolLoop:
    """The state of one loop: transcript, rounds, tools; no I/O."""

    def __init__(
        self,
        messages: Any,
        *,
        mcp_tools: Sequence[MCPTool],
        functions: Sequence[FunctionTool],
        max_rounds: int,
        tool_timeout: float | Mapping[str, float] | None,
        on_tool_error: OnToolError,
        params: dict[str, Any],
        external_tools: Sequence[Tool] = (),
    ) -> None:
        if max_rounds < 1:
            raise BadRequestError(f"max_rounds must be at least 1, got {max_rounds}")
        if on_tool_error not in ("return", "raise"):
            raise BadRequestError(f"on_tool_error must be 'return' or 'raise', got {on_tool_error!r}")
        if "tools" in params or "messages" in params:
            raise BadRequestError(
                "the tool loop sets the request's tools itself: pass local Python tools as "
                "tools=[function, ...] and MCP servers through mcp="
            )
        self.messages = to_messages(messages)
        self.targets: dict[str, MCPTool | FunctionTool] = {t.exposed_name: t for t in mcp_tools}
        for fn in functions:
            if fn.name in self.targets:
                raise BadRequestError(
                    f"local tool {fn.name!r} has the same name as an MCP tool; rename the function"
                )
            self.targets[fn.name] = fn
        self.tools: list[Tool] = [t.tool for t in self.targets.values()]
        clashes = sorted(t.name for t in external_tools if t.name in self.targets)
        if clashes:
            raise BadRequestError(
                f"tool name(s) {', '.join(clashes)} are both the caller's own tools and tools "
                "the loop runs (MCP or local): rename the caller's tools"
            )
        self.external = {t.name for t in external_tools}
        self.tools.extend(external_tools)
        self.max_rounds = max_rounds
        self.tool_timeout = tool_timeout
        self.on_tool_error = on_tool_error
        self.params = params
        self.first_choice = to_tool_choice(params.pop("tool_choice", None))
        self.responses: list[Response] = []
        self.runs: list[ToolRun] = []

    @property
    def round(self) -> int:
        return len(self.responses)

    def request(self) -> dict[str, Any]:
        """The params of the next model call. A forced ``tool_choice`` applies to the
        first round only (else the model could never give a final answer)."""
        params = dict(self.params)
        if self.tools:
            params["tools"] = self.tools
            choice = self.first_choice if not self.responses else None
            if choice is not None:
                params["tool_choice"] = choice
        return params

    def answer(self, response: Response) -> list[ToolCall]:
        """Take a round's response; the calls to run (none: it is the final answer, as
        is an answer calling any of the caller's ``external_tools``: those are the
        caller's to run)."""
        self.responses.append(response)
        self.messages.append(response.to_message())
        calls = response.tool_calls
        if any(call.name in self.external for call in calls):
            return []
        if calls and self.round >= self.max_rounds:
            raise ToolLoopError(
                f"the model still asked for tools after max_rounds={self.max_rounds} rounds "
                f"({', '.join(c.name for c in calls)}); raise max_rounds or check the prompt",
                list(self.messages),
            )
        return calls

    def plan(self, call: ToolCall) -> _Planned:
        """Parse the arguments and find the tool; errors become the call's output."""
        try:
            arguments = call.parse_arguments()
        except ToolArgumentsError as exc:
            output = ToolOutput.failure(exc, tool=call.name).with_text(
                f"{exc}. Call the tool again with a JSON object as its arguments."
            )
            self._forget_arguments(call)
            return _Planned(call, {}, output=output)
        target = self.targets.get(call.name)
        if target is None:
            known = ", ".join(sorted(self.targets)) or "none"
            error = MCPUnknownToolError(
                f"there is no tool named {call.name!r}; available tools: {known}", tool=call.name
            )
            return _Planned(call, arguments, output=ToolOutput.failure(error, tool=call.name))
        return _Planned(call, arguments, target)

    def _forget_arguments(self, call: ToolCall) -> None:
        """The history keeps the call with empty arguments: no dialect sends arguments
        that are not a JSON object (ToolArgumentsError), and the error result that
        answers the call quotes what the model wrote, so it can correct itself."""
        message = self.messages[-1]
        message.parts = [
            ToolCall(call.id, call.name, {}, "", call.provider_data) if part is call else part
            for part in message.parts
        ]

    def approval_request(self, planned: _Planned) -> ToolCallRequest:
        target = planned.target
        return ToolCallRequest(
            call=planned.call,
            name=planned.call.name,
            arguments=dict(planned.arguments),
            server=planned.server,
            tool=planned.tool or planned.call.name,
            mcp_tool=target if isinstance(target, MCPTool) else None,
        )

    def decide(self, planned: _Planned, verdict: Any) -> None:
        """Apply the approval hook's verdict (see :data:`ApproveHook`)."""
        if verdict is None or verdict is True:
            return
        if isinstance(verdict, Mapping):
            planned.arguments = dict(verdict)
            return
        message = verdict if isinstance(verdict, str) and verdict else DENIED
        planned.approved = False
        planned.output = ToolOutput.failure(
            MCPToolDenied(message, server=planned.server, tool=planned.tool),
            server=planned.server, tool=planned.tool, status="denied",
        )

    def timeout_for(self, name: str) -> float | None:
        value = self.tool_timeout
        if isinstance(value, Mapping):
            return value.get(name)
        return value

    def finish(self, planned: Sequence[_Planned], outputs: Sequence[ToolOutput]) -> list[ToolRun]:
        """Append the round's results (one tool message, in the model's call order)."""
        runs: list[ToolRun] = []
        for item, output in zip(planned, outputs, strict=True):
            result = ToolResult(item.call.id, output.tool_content(), output.is_error, item.call.name)
            runs.append(ToolRun(self.round, item.call, output, result, item.server, item.tool,
                                item.approved))
        self.runs.extend(runs)
        self.messages.append(Message("tool", [run.result for run in runs]))
        if self.on_tool_error == "raise":
            failed = next((run for run in runs if run.output.is_error), None)
            if failed is not None:
                error = ToolLoopError(
                    f"tool call {failed.call.name!r} failed ({failed.output.status}): "
                    f"{failed.output.text[:300]}",
                    list(self.messages),
                )
                raise error from failed.output.error
        return runs

    def result(self, trace_id: str) -> ToolLoopResult:
        return ToolLoopResult(self.responses[-1], self.messages, self.responses, self.runs, trace_id)


# --------------------------------------------------------------------------- execution


async def _run_function(fn: FunctionTool, planned: _Planned, timeout: float | None,
                        ledger: Ledger | None) -> ToolOutput:
    telemetry = _telemetry.current
    if telemetry is None:
        return await _function_output(fn, planned, timeout, ledger)
    span = telemetry.tool(fn.name, call_id=planned.call.id, description=fn.tool.description,
                          arguments=planned.arguments)
    try:
        with span.active():
            output = await _function_output(fn, planned, timeout, ledger)
    except BaseException as exc:
        span.end(status=type(exc).__name__, error=exc, result=None)
        raise
    span.end(status=output.status, error=output.error, result=output.content)
    return output


async def _function_output(fn: FunctionTool, planned: _Planned, timeout: float | None,
                           ledger: Ledger | None) -> ToolOutput:
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    try:
        value = await asyncio.wait_for(fn.acall(planned.arguments), timeout)
        output = value_to_output(value, tool=fn.name)
    except TimeoutError:
        output = ToolOutput.failure(
            MCPTimeoutError(f"local tool {fn.name!r} timed out after {timeout:g} s", tool=fn.name),
            tool=fn.name,
        )
    except Exception as exc:
        output = ToolOutput.failure(exc, tool=fn.name).with_text(f"{type(exc).__name__}: {exc}")
    output.latency_ms = (time.perf_counter() - t0) * 1000.0
    if ledger is not None:
        await arecord(ledger, tool_record(output, None, started_at, planned.call.id))
    return output


async def _execute(loop: _ToolLoop, planned: _Planned, client: MCPClient | None,
                   ledger: Ledger | None) -> ToolOutput:
    """Run one planned call (on the MCP client's own event loop when it lives on
    another thread, e.g. a SyncMCPClient)."""
    if planned.output is not None:
        return planned.output
    target = planned.target
    timeout = loop.timeout_for(planned.call.name)
    if isinstance(target, FunctionTool):
        return await _run_function(target, planned, timeout, ledger)
    assert isinstance(target, MCPTool) and client is not None
    coro = client.call_server_tool(
        target.server, target.name, planned.arguments, timeout=timeout,
        call_id=planned.call.id, ledger=ledger,
    )
    home = client.loop
    if home is None or home is asyncio.get_running_loop():
        return await coro
    from tollway.mcp.client import submit

    return await asyncio.wrap_future(submit(home, coro))


async def _approve(loop: _ToolLoop, planned: list[_Planned], hook: ApproveHook | None) -> None:
    if hook is None:
        return
    for item in planned:
        if item.output is not None:
            continue
        verdict = hook(loop.approval_request(item))
        if inspect.isawaitable(verdict):
            verdict = await verdict
        loop.decide(item, verdict)


def _approve_sync(loop: _ToolLoop, planned: list[_Planned], hook: ApproveHook | None) -> None:
    if hook is None:
        return
    for item in planned:
        if item.output is not None:
            continue
        verdict = hook(loop.approval_request(item))
        if inspect.isawaitable(verdict):
            verdict = asyncio.run(_await(verdict))
        loop.decide(item, verdict)


async def _await(value: Awaitable[T]) -> T:
    return await value


async def _catalog_tools(client: MCPClient | None,
                         allow: Callable[[MCPTool], bool] | None = None) -> list[MCPTool]:
    if client is None:
        return []
    home = client.loop
    if home is not None and home is not asyncio.get_running_loop() and not home.is_closed():
        from tollway.mcp.client import submit

        listed = list(await asyncio.wrap_future(submit(home, client.list_tools())))
    else:
        listed = await client.list_tools()
    return listed if allow is None else [tool for tool in listed if allow(tool)]


def _async_client(mcp: Any) -> MCPClient | None:
    if mcp is None:
        return None
    from tollway.mcp.client import MCPClient, SyncMCPClient

    if isinstance(mcp, SyncMCPClient):
        return mcp.client
    if isinstance(mcp, MCPClient):
        return mcp
    raise BadRequestError(
        f"mcp= takes an MCPClient or SyncMCPClient (connected), got {type(mcp).__name__}"
    )


def _functions(tools: Iterable[Any] | None) -> list[FunctionTool]:
    return [function_tool(t) for t in tools or ()]


def _model_attribution(model: Model) -> Any:
    """A scope that gives tool rows the attribution the model gives its own rows: the
    model's defaults (``Model(attribution=...)``) under the caller's scope."""
    from contextlib import nullcontext

    from tollway.core.cost.attribution import attribute, current_attribution

    defaults = getattr(model, "_defaults", None)
    if not defaults:
        return nullcontext()
    return attribute(defaults.merge(current_attribution()))


def _tool_ledger(model: Model, client: MCPClient | None) -> Ledger | None:
    """Where the loop's tool rows go: the model's ledger, so one loop is one ledger;
    the MCP client's (by default the configured ledger) when the model records
    nothing. A client built with ``ledger=False`` still records none of its calls."""
    ledger = model.ledger
    if ledger is None and client is not None:
        ledger = client.row_ledger()
    return ledger


# --------------------------------------------------------------------------- drivers


async def arun_tools(
    model: Model,
    messages: Any,
    /,
    *,
    mcp: MCPClient | SyncMCPClient | None = None,
    tools: Iterable[Callable[..., Any] | FunctionTool] | None = None,
    max_rounds: int = 8,
    on_tool_call: ApproveHook | None = None,
    tool_timeout: float | Mapping[str, float] | None = None,
    on_tool_error: OnToolError = "return",
    trace_id: str | None = None,
    allow_tool: Callable[[MCPTool], bool] | None = None,
    external_tools: Sequence[Tool] = (),
    **params: Any,
) -> ToolLoopResult:
    """Run the tool loop (see the module docstring). ``tools``: local Python functions
    offered beside the MCP tools. ``tool_timeout``: seconds per tool call (or exposed
    name -> seconds), overriding the servers' ``call_timeout``. ``params``: anything
    ``Model.acomplete`` takes (temperature, max_tokens, tool_choice for the first
    round...). ``allow_tool``: which of the MCP catalog's tools this loop may offer and
    run (a tool it rejects is unknown to the model). ``external_tools``: the caller's
    own tool definitions, offered beside them but never run: an answer calling one
    ends the loop (the gateway hands such answers back to its client)."""
    client = _async_client(mcp)
    with _model_attribution(model), loop_scope(trace_id) as scope:
        loop = _ToolLoop(
            messages, mcp_tools=await _catalog_tools(client, allow_tool), functions=_functions(tools),
            max_rounds=max_rounds, tool_timeout=tool_timeout, on_tool_error=on_tool_error,
            params=params, external_tools=external_tools,
        )
        ledger = _tool_ledger(model, client)
        while True:
            response = await model.acomplete(loop.messages, **loop.request())
            calls = loop.answer(response)
            if not calls:
                return scope.done(loop.result(scope.trace_id))
            planned = [loop.plan(call) for call in calls]
            await _approve(loop, planned, on_tool_call)
            outputs = await asyncio.gather(
                *(_execute(loop, item, client, ledger) for item in planned)
            )
            loop.finish(planned, outputs)


def run_tools(
    model: Model,
    messages: Any,
    /,
    *,
    mcp: MCPClient | SyncMCPClient | None = None,
    tools: Iterable[Callable[..., Any] | FunctionTool] | None = None,
    max_rounds: int = 8,
    on_tool_call: ApproveHook | None = None,
    tool_timeout: float | Mapping[str, float] | None = None,
    on_tool_error: OnToolError = "return",
    trace_id: str | None = None,
    allow_tool: Callable[[MCPTool], bool] | None = None,
    external_tools: Sequence[Tool] = (),
    **params: Any,
) -> ToolLoopResult:
    """The synchronous tool loop: model rounds use ``Model.complete`` in this thread;
    tool calls run concurrently on the MCP client's event-loop thread (a SyncMCPClient,
    or an MCPClient whose loop runs in another thread). The approval hook runs in this
    thread."""
    client = _async_client(mcp)
    with _model_attribution(model), loop_scope(trace_id) as scope:
        mcp_tools = (_on_client_loop(client, lambda: _catalog_tools(client, allow_tool))
                     if client else [])
        loop = _ToolLoop(
            messages, mcp_tools=mcp_tools, functions=_functions(tools),
            max_rounds=max_rounds, tool_timeout=tool_timeout, on_tool_error=on_tool_error,
            params=params, external_tools=external_tools,
        )
        ledger = _tool_ledger(model, client)
        while True:
            response = model.complete(loop.messages, **loop.request())
            calls = loop.answer(response)
            if not calls:
                return scope.done(loop.result(scope.trace_id))
            planned = [loop.plan(call) for call in calls]
            _approve_sync(loop, planned, on_tool_call)

            async def batch(planned: list[_Planned] = planned) -> list[ToolOutput]:
                return list(await asyncio.gather(
                    *(_execute(loop, item, client, ledger) for item in planned)
                ))

            loop.finish(planned, _on_client_loop(client, batch))


def _on_client_loop(client: MCPClient | None, factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code: on the client's loop thread, else a fresh loop."""
    if client is not None and client.loop is not None and not client.loop.is_closed():
        from tollway.mcp.client import run_sync

        return run_sync(client, _await(factory()))
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(factory()))
    raise BadRequestError(
        "run_tools is the synchronous loop and cannot run inside an event loop; "
        "use `await arun_tools(model, ...)`"
    )


async def astream_tools(
    model: Model,
    messages: Any,
    /,
    *,
    mcp: MCPClient | SyncMCPClient | None = None,
    tools: Iterable[Callable[..., Any] | FunctionTool] | None = None,
    max_rounds: int = 8,
    on_tool_call: ApproveHook | None = None,
    tool_timeout: float | Mapping[str, float] | None = None,
    on_tool_error: OnToolError = "return",
    trace_id: str | None = None,
    allow_tool: Callable[[MCPTool], bool] | None = None,
    external_tools: Sequence[Tool] = (),
    **params: Any,
) -> AsyncIterator[ToolLoopEvent]:
    """The tool loop, streamed: each round's model stream events (TextDelta,
    ToolCallDelta, ...) as they arrive, :class:`RoundEnd` instead of each round's
    StreamEnd, :class:`ToolCallStarted` / :class:`ToolCallFinished` around each tool call
    (finished events in completion order), and :class:`ToolLoopEnd` with the result."""
    client = _async_client(mcp)
    with _model_attribution(model):
        scope = loop_scope(trace_id).start()
        rounds: AsyncGenerator[ToolLoopEvent, None] | None = None
        try:
            loop = _ToolLoop(
                messages, mcp_tools=await _catalog_tools(client, allow_tool),
                functions=_functions(tools), max_rounds=max_rounds, tool_timeout=tool_timeout,
                on_tool_error=on_tool_error, params=params, external_tools=external_tools,
            )
            rounds = _stream_rounds(model, loop, scope, client, on_tool_call)
            async for item in rounds:
                yield item
        except BaseException as exc:  # a failure, or the consumer closed the stream early
            if rounds is not None:
                await rounds.aclose()  # its streams and tool tasks end before the span
            scope.finish(exc)
            raise
        scope.finish()


async def _stream_rounds(
    model: Model, loop: _ToolLoop, scope: LoopScope, client: MCPClient | None,
    on_tool_call: ApproveHook | None,
) -> AsyncGenerator[ToolLoopEvent, None]:
    """:func:`astream_tools`' rounds. Calls start under ``scope.active()`` (never across
    a ``yield``: the consumer's code must not run inside the loop's span context)."""
    ledger = _tool_ledger(model, client)
    while True:
        response: Response | None = None
        live = model.astream(loop.messages, **loop.request())
        with scope.active():
            await live.__aenter__()
        try:
            async for event in live:
                if isinstance(event, StreamEnd):
                    response = event.response
                else:
                    yield event
        finally:
            await live.__aexit__(None, None, None)
        assert response is not None
        calls = loop.answer(response)
        yield RoundEnd(loop.round, response)
        if not calls:
            yield ToolLoopEnd(scope.done(loop.result(scope.trace_id)))
            return
        planned = [loop.plan(call) for call in calls]
        await _approve(loop, planned, on_tool_call)
        for item in planned:
            yield ToolCallStarted(loop.round, item.call, item.server, item.tool)

        async def indexed(index: int, item: _Planned) -> tuple[int, ToolOutput]:
            return index, await _execute(loop, item, client, ledger)

        with scope.active():  # each task copies the context it is created in
            tasks = [asyncio.ensure_future(indexed(i, item)) for i, item in enumerate(planned)]
        outputs: list[ToolOutput | None] = [None] * len(planned)
        try:
            for next_done in asyncio.as_completed(tasks):
                index, output = await next_done
                outputs[index] = output
                item = planned[index]
                result = ToolResult(item.call.id, output.tool_content(), output.is_error,
                                    item.call.name)
                yield ToolCallFinished(loop.round, ToolRun(
                    loop.round, item.call, output, result, item.server, item.tool,
                    item.approved,
                ))
        finally:
            for task in tasks:
                task.cancel()
        loop.finish(planned, [o for o in outputs if o is not None])
