"""The OpenAI Responses endpoint: ``POST /v1/responses``.

A Responses client (the openai SDK's ``client.responses``, the Agents SDK, Codex-style
tools) reaches any upstream: the body goes through the core's Responses interchange code
(:mod:`tollway.core.dialects.responses_interchange`) to a canonical Request, the same
Model as every other endpoint serves it, and the answer is written back as a Responses
``response`` object or event stream. The gateway is stateless: it stores no responses,
so ``previous_response_id`` is refused with a message that says to send the whole
conversation (what ``store: false`` clients do anyway).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from tollway.core.cost.attribution import attribute
from tollway.core.dialects.responses_interchange.reading import request_from_responses
from tollway.core.dialects.responses_interchange.writing import (
    ResponsesEventEncoder,
    response_to_responses,
)
from tollway.core.errors import TollwayError
from tollway.core.types import Request, StreamEnd
from tollway.gateway.errors import classify
from tollway.gateway.http import HttpRequest, JSONReply, StreamReply, dumps
from tollway.gateway.openai_routes import call_headers

if TYPE_CHECKING:
    from tollway.core.model import AsyncResponseStream
    from tollway.gateway.runtime import Gateway

__all__ = ["responses"]


def _sse(payload: dict[str, object]) -> bytes:
    return b"event: " + str(payload["type"]).encode() + b"\ndata: " + dumps(payload) + b"\n\n"


async def responses(gw: Gateway, req: HttpRequest) -> JSONReply | StreamReply:
    body = req.json()
    name, request, stream = request_from_responses(body)
    model = gw.model_for(req.key, name)
    key_id = req.key.id if req.key else None
    async with attribute(gw.attribution(req.key, req.headers, body.get("user"))):
        if not stream:
            response = await model.acomplete(request)
            gw.metrics.call(name, key_id, response)
            payload = response_to_responses(response, request, model=response.model or name)
            return JSONReply(200, dumps(payload), call_headers(response))
        live = model.astream(request)
    await live.__aenter__()  # errors before the first event are still a plain JSON error
    return StreamReply(_events(gw, live, name, key_id, request))


async def _events(gw: Gateway, live: AsyncResponseStream, name: str, key_id: str | None,
                  request: Request) -> AsyncIterator[bytes]:
    encoder = ResponsesEventEncoder(model=name, request=request)
    try:
        async for event in live:
            if isinstance(event, StreamEnd):
                gw.metrics.call(name, key_id, event.response)
            for payload in encoder.feed(event):
                yield _sse(payload)
    except TollwayError as exc:  # after the first byte: the error travels in the stream
        _, message, code, _ = classify(exc)
        for payload in encoder.fail(code, message):
            yield _sse(payload)
    finally:
        await live.aclose()
