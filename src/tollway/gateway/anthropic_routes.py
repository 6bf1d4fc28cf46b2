"""Anthropic-compatible endpoints: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

So the Anthropic SDK and Claude Code (``ANTHROPIC_BASE_URL=http://gateway``) reach any
upstream: the body goes through the core's Anthropic interchange code
(:mod:`tollway.core.dialects.anthropic_interchange`) to a canonical Request, the
same Model as every other endpoint serves it, and the answer is written back as a
Messages API message or event stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from tollway.core.cost.attribution import attribute
from tollway.core.cost.estimate import estimate_input_tokens
from tollway.core.dialects.anthropic_interchange import (
    AnthropicEventEncoder,
    request_from_anthropic,
    response_to_anthropic,
)
from tollway.core.errors import TollwayError
from tollway.core.types import StreamEnd, StreamStart
from tollway.gateway.errors import error_response
from tollway.gateway.http import HttpRequest, JSONReply, StreamReply, dumps
from tollway.gateway.mcp_chat import mcp_plan
from tollway.gateway.openai_routes import call_headers

if TYPE_CHECKING:
    from tollway.core.model import AsyncResponseStream
    from tollway.gateway.runtime import Gateway

__all__ = ["count_tokens", "messages"]


def _sse(name: str, payload: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(payload) + b"\n\n"


def _client_user(body: Mapping[str, object]) -> object:
    metadata = body.get("metadata")
    return metadata.get("user_id") if isinstance(metadata, Mapping) else None


async def messages(gw: Gateway, req: HttpRequest) -> JSONReply | StreamReply:
    body = req.json()
    name, request, stream = request_from_anthropic(body)
    model = gw.model_for(req.key, name)
    key_id = req.key.id if req.key else None
    attribution = gw.attribution(req.key, req.headers, _client_user(body))
    plan = mcp_plan(gw, req, name, model, request)
    if plan is not None:  # an MCP alias: the tool loop runs here (tollway.gateway.mcp_chat)
        if not stream:
            response, headers = await plan.complete(attribution)
            return JSONReply(200, dumps(response_to_anthropic(response)), headers)
        loop_stream = plan.stream(attribution)
        await loop_stream.start()
        return StreamReply(_events(gw, loop_stream, name, key_id))  # type: ignore[arg-type]
    async with attribute(attribution):
        if not stream:
            response = await model.acomplete(request)
            gw.metrics.call(name, key_id, response)
            return JSONReply(200, dumps(response_to_anthropic(response)), call_headers(response))
        live = model.astream(request)
    await live.__aenter__()
    return StreamReply(_events(gw, live, name, key_id))


async def _events(gw: Gateway, live: AsyncResponseStream, name: str,
                  key_id: str | None) -> AsyncIterator[bytes]:
    encoder = AnthropicEventEncoder(model=name)
    try:
        async for event in live:
            if isinstance(event, StreamStart) and event.model:
                encoder.model = event.model
            elif isinstance(event, StreamEnd):
                gw.metrics.call(name, key_id, event.response)
            for wire_name, payload in encoder.feed(event):
                yield _sse(wire_name, payload)
        for wire_name, payload in encoder.close():
            yield _sse(wire_name, payload)
    except TollwayError as exc:  # after the first byte: Anthropic's in-stream error event
        _, _, error = error_response("anthropic", exc)
        yield b"event: error\ndata: " + error + b"\n\n"
    finally:
        await live.aclose()


async def count_tokens(gw: Gateway, req: HttpRequest) -> JSONReply:
    """The input tokens of a request, as tollway's budgets count them: an upper-bound
    estimate without a tokenizer (ASCII at 4 characters per token, other characters
    one each; see ``tollway.core.cost.estimate``), never a provider round trip."""
    body = req.json()
    name, request, _ = request_from_anthropic(body)
    gw.model_for(req.key, name)  # the same 403 / 404 as a real call
    return JSONReply(200, dumps({"input_tokens": estimate_input_tokens(request)}))
