"""Chat calls to an MCP alias: the permitted tools injected, the loop run server-side.

A chat completion (OpenAI dialect) or message (Anthropic dialect) to an alias listed
in ``gateway.mcp_aliases`` goes through the core tool loop
(:func:`tollway.mcp.loop.arun_tools` / :func:`~tollway.mcp.loop.astream_tools`) with
the tools of the alias's servers that the key's grants allow. Every model round and
every tool call is then a ledger row under the loop's trace id, attributed to the key
and checked against its budgets, because each round is an ordinary gateway Model call
inside the key's attribution scope.

Tools the client sends itself are offered beside the MCP tools and never run here: an
answer calling one of them ends the loop and goes back to the client, carrying only
the client's own calls (MCP calls of that same answer are dropped: the client could
not answer them; the model may ask again next turn). A client tool named like an MCP
tool is a 400.

Streamed, each round is streamed from the provider; text reaches the client as it
comes, tool-call fragments only for the final answer's client tools (MCP calls are
the gateway's business), and the usage of the final round closes the stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tollway.core.cost.attribution import attribute
from tollway.core.types import (
    FinishEvent,
    Response,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from tollway.core.cost.attribution import Attribution
    from tollway.core.model import Model
    from tollway.core.types import Request
    from tollway.gateway.http import HttpRequest
    from tollway.gateway.runtime import Gateway
    from tollway.mcp.loop import ToolLoopResult
    from tollway.mcp.tools import MCPTool

__all__ = ["MCPPlan", "mcp_plan"]

_REQUEST_PARAMS = ("tool_choice", "response_format", "temperature", "top_p", "max_tokens",
                   "stop", "seed", "parallel_tool_calls", "reasoning")


@dataclass(slots=True)
class MCPPlan:
    """What one chat request to an MCP alias runs with."""

    gw: Gateway
    req: HttpRequest
    name: str
    model: Model
    request: Request
    servers: list[str]
    allow: Callable[[MCPTool], bool]

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {k: getattr(self.request, k) for k in _REQUEST_PARAMS
                                  if getattr(self.request, k) is not None}
        if self.request.extra:
            params["extra"] = self.request.extra
        if self.request.extra_headers:
            params["extra_headers"] = self.request.extra_headers
        return params

    def _loop_options(self) -> dict[str, Any]:
        return {"allow_tool": self.allow, "external_tools": list(self.request.tools),
                "max_rounds": self.gw.spec.mcp_max_rounds, **self._params()}

    def _record(self, responses: list[Response]) -> None:
        key_id = self.req.key.id if self.req.key else None
        for response in responses:
            self.gw.metrics.call(self.name, key_id, response)

    async def complete(self, attribution: Attribution) -> tuple[Response, dict[str, str]]:
        """The final answer (client tool calls only) and the headers for the client."""
        from tollway.mcp.loop import arun_tools

        async with attribute(attribution), self.gw.mcp.client(self.servers, self.req.headers) as client:
            result = await arun_tools(self.model, self.request.messages, mcp=client,
                                      **self._loop_options())
        self._record(result.responses)
        response = _client_answer(result.response, self.request)
        return response, loop_headers(result)

    def stream(self, attribution: Attribution) -> _LoopStream:
        return _LoopStream(self, attribution)


def _client_answer(response: Response, request: Request) -> Response:
    """The answer without the MCP calls a round mixing client and MCP tools made."""
    external = {t.name for t in request.tools}
    if not any(isinstance(p, ToolCall) and p.name not in external for p in response.parts):
        return response
    parts = [p for p in response.parts if not (isinstance(p, ToolCall) and p.name not in external)]
    return dataclasses.replace(response, parts=parts)


def loop_headers(result: ToolLoopResult) -> dict[str, str]:
    headers = {"x-tollway-trace-id": result.trace_id,
               "x-tollway-mcp-rounds": str(result.rounds),
               "x-tollway-mcp-tool-calls": str(len(result.tool_runs))}
    if result.cost_nanos is not None:
        headers["x-tollway-cost-usd"] = f"{result.cost_nanos / 1e9:.9f}"
    if result.response.deployment:
        headers["x-tollway-deployment"] = result.response.deployment
    return headers


class _LoopStream:
    """The loop's rounds as one canonical event stream (what the dialect encoders
    read): StreamStart once, text as it comes, the final answer's client tool calls,
    its finish reason, and a StreamEnd with the final Response. Has the ``aclose``
    the routes' chunk writers call."""

    def __init__(self, plan: MCPPlan, attribution: Attribution) -> None:
        self.plan = plan
        self.attribution = attribution
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=64)
        self._task: asyncio.Task[None] | None = None
        self._first: tuple[str, Any] | None = None

    async def start(self) -> None:
        """Start the loop and wait for its first event, so that a failure before any
        output (a server that cannot be reached, a budget refusal) is still a plain
        JSON error. The loop runs in a task of its own: its context scopes (trace,
        attribution) are entered and left in one context, whichever task reads."""
        self._task = asyncio.ensure_future(self._produce())
        self._first = await self._queue.get()
        if self._first[0] == "error":
            await self.aclose()
            raise self._first[1]

    async def _produce(self) -> None:
        try:
            async for event in self._run():
                await self._queue.put(("event", event))
        except Exception as exc:
            await self._queue.put(("error", exc))
            return
        await self._queue.put(("done", None))

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[StreamEvent]:
        item, self._first = self._first, None
        while True:
            if item is None:
                item = await self._queue.get()
            kind, value = item
            item = None
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> AsyncGenerator[StreamEvent, None]:
        from tollway.mcp.loop import RoundEnd, ToolLoopEnd, astream_tools

        plan = self.plan
        started = False
        async with attribute(self.attribution), plan.gw.mcp.client(plan.servers, plan.req.headers) as client:
            events = astream_tools(plan.model, plan.request.messages, mcp=client,
                                   **plan._loop_options())
            try:
                async for event in events:
                    if isinstance(event, StreamStart):
                        if not started:
                            started = True
                            yield event
                    elif isinstance(event, TextDelta | ThinkingDelta):
                        yield event
                    elif isinstance(event, RoundEnd):
                        calls = event.response.tool_calls
                        external = {t.name for t in plan.request.tools}
                        if calls and not any(c.name in external for c in calls):
                            continue  # a round the gateway runs tools for
                        answer = _client_answer(event.response, plan.request)
                        for index, call in enumerate(answer.tool_calls):
                            yield ToolCallDelta(index, call.id, call.name, call.raw_arguments or _json(call.arguments))
                        yield FinishEvent(answer.finish_reason)
                    elif isinstance(event, ToolLoopEnd):
                        result = event.result
                        plan._record(result.responses[:-1])
                        yield StreamEnd(_client_answer(result.response, plan.request))
            finally:
                await events.aclose()  # type: ignore[attr-defined]  # an async generator


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


def mcp_plan(gw: Gateway, req: HttpRequest, name: str, model: Model, request: Request) -> MCPPlan | None:
    """The plan for a chat call, or None when the alias has no MCP servers or the key
    may use none of them (logged: never a silently empty tool list)."""
    attached = gw.spec.mcp_servers_for(name)
    if not attached:
        return None
    servers = gw.mcp.granted_servers(req.key, attached)
    if not servers:
        return None
    return MCPPlan(gw, req, name, model, request, servers, gw.mcp.permitted(req.key, servers))

