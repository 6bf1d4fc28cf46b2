"""OpenAI-compatible endpoints: ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``.

Each handler reads the body through the OpenAI interchange code of the core
(``request_from_openai``), calls the Model for the requested alias inside the key's
attribution scope, and writes the answer with ``response_to_openai`` or, streamed,
with :class:`~tollway.core.dialects.openai_chat.OpenAIChunkEncoder` (usage in a last
chunk when the client asked ``stream_options.include_usage``). Whatever provider
served the call, the client sees OpenAI's shapes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from tollway.core.cost.attribution import attribute
from tollway.core.dialects.openai_interchange.codec import (
    OpenAIChunkEncoder,
    request_from_openai,
    response_to_openai,
)
from tollway.core.errors import BadRequestError, TollwayError
from tollway.core.inputs import build_request
from tollway.core.types import Message, StreamEnd, StreamStart, TextDelta
from tollway.gateway.errors import GatewayError, error_response
from tollway.gateway.http import HttpRequest, JSONReply, StreamReply, dumps
from tollway.gateway.mcp_chat import mcp_plan

if TYPE_CHECKING:
    from tollway.core.media_types import EmbeddingResponse, ImageResponse
    from tollway.core.model import AsyncResponseStream
    from tollway.core.types import Response
    from tollway.gateway.runtime import Gateway

__all__ = ["chat_completions", "completions", "get_model", "list_models"]


def _model_entry(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "tollway"}


async def list_models(gw: Gateway, req: HttpRequest) -> JSONReply:
    data = [_model_entry(name) for name in gw.allowed_models(req.key)]
    return JSONReply(200, dumps({"object": "list", "data": data}))


async def get_model(gw: Gateway, req: HttpRequest) -> JSONReply:
    name = req.params["id"]
    if name not in gw.allowed_models(req.key):
        raise GatewayError(404, f"no model {name!r} for this key (GET /v1/models lists them)",
                           code="model_not_found", param="model")
    return JSONReply(200, dumps(_model_entry(name)))


def call_headers(response: Response | EmbeddingResponse | ImageResponse) -> dict[str, str]:
    """What the gateway tells the client about the call besides the body."""
    headers = {"x-tollway-trace-id": response.trace_id or ""}
    if response.cost_nanos is not None:
        headers["x-tollway-cost-usd"] = f"{response.cost_nanos / 1e9:.9f}"
    if response.deployment:
        headers["x-tollway-deployment"] = response.deployment
    return headers


async def chat_completions(gw: Gateway, req: HttpRequest) -> JSONReply | StreamReply:
    body = req.json()
    name, request, stream = request_from_openai(body)
    model = gw.model_for(req.key, name)
    attribution = gw.attribution(req.key, req.headers, body.get("user"))
    key_id = req.key.id if req.key else None
    options = body.get("stream_options")
    include_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))
    plan = mcp_plan(gw, req, name, model, request)
    if plan is not None:  # an MCP alias: the tool loop runs here (tollway.gateway.mcp_chat)
        if not stream:
            response, headers = await plan.complete(attribution)
            return JSONReply(200, dumps(response_to_openai(response)), headers)
        loop_stream = plan.stream(attribution)
        await loop_stream.start()
        return StreamReply(_chat_chunks(gw, loop_stream, name, key_id, include_usage))  # type: ignore[arg-type]
    async with attribute(attribution):
        if not stream:
            response = await model.acomplete(request)
            gw.metrics.call(name, key_id, response)
            return JSONReply(200, dumps(response_to_openai(response)), call_headers(response))
        live = model.astream(request)
    await live.__aenter__()  # errors before the first token are still a plain JSON error
    return StreamReply(_chat_chunks(gw, live, name, key_id, include_usage))


async def _chat_chunks(gw: Gateway, live: AsyncResponseStream, name: str, key_id: str | None,
                       include_usage: bool) -> AsyncIterator[bytes]:
    encoder = OpenAIChunkEncoder(id="chatcmpl-tollway", model=name, created=int(time.time()),
                                 include_usage=include_usage)
    try:
        async for event in live:
            if isinstance(event, StreamStart):
                encoder.id = event.id or encoder.id
                encoder.model = event.model or encoder.model
            elif isinstance(event, StreamEnd):
                gw.metrics.call(name, key_id, event.response)
            for chunk in encoder.feed(event):
                yield b"data: " + dumps(chunk) + b"\n\n"
        for chunk in encoder.close():
            yield b"data: " + dumps(chunk) + b"\n\n"
        yield b"data: [DONE]\n\n"
    except TollwayError as exc:  # after the first byte: the error travels in the stream
        _, _, payload = error_response("openai", exc)
        yield b"data: " + payload + b"\n\n"
    finally:
        await live.aclose()


# --------------------------------------------------------------------------- completions


def _prompt(body: Mapping[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequestError("'prompt' must be a string (one prompt per request here)")
    return prompt


async def completions(gw: Gateway, req: HttpRequest) -> JSONReply | StreamReply:
    """The legacy completions endpoint, minimal: one prompt, as one user message."""
    body = req.json()
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise BadRequestError("the request body needs 'model' (a model name or alias)")
    request = build_request(
        [Message.user(_prompt(body))], max_tokens=body.get("max_tokens"),
        temperature=body.get("temperature"), top_p=body.get("top_p"), stop=body.get("stop"),
        seed=body.get("seed"),
    )
    model = gw.model_for(req.key, name)
    key_id = req.key.id if req.key else None
    async with attribute(gw.attribution(req.key, req.headers, body.get("user"))):
        if not body.get("stream"):
            response = await model.acomplete(request)
            gw.metrics.call(name, key_id, response)
            return JSONReply(200, dumps(_completion(response, name)), call_headers(response))
        live = model.astream(request)
    await live.__aenter__()
    return StreamReply(_completion_chunks(gw, live, name, key_id))


def _completion(response: Response, name: str, text: str | None = None) -> dict[str, Any]:
    usage = response.usage
    return {
        "id": "cmpl-" + (response.id or "tollway").removeprefix("chatcmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": response.model or name,
        "choices": [{"text": response.text if text is None else text, "index": 0,
                     "logprobs": None, "finish_reason": response.finish_reason}],
        "usage": {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                  "total_tokens": usage.input_tokens + usage.output_tokens},
    }


async def _completion_chunks(gw: Gateway, live: AsyncResponseStream, name: str,
                             key_id: str | None) -> AsyncIterator[bytes]:
    created = int(time.time())
    try:
        async for event in live:
            if isinstance(event, TextDelta) and event.text:
                chunk = {"id": "cmpl-tollway", "object": "text_completion", "created": created,
                         "model": name, "choices": [{"text": event.text, "index": 0,
                                                     "logprobs": None, "finish_reason": None}]}
                yield b"data: " + dumps(chunk) + b"\n\n"
            elif isinstance(event, StreamEnd):
                gw.metrics.call(name, key_id, event.response)
                final = _completion(event.response, name, text="")
                yield b"data: " + dumps(final) + b"\n\n"
        yield b"data: [DONE]\n\n"
    except TollwayError as exc:
        _, _, payload = error_response("openai", exc)
        yield b"data: " + payload + b"\n\n"
    finally:
        await live.aclose()
