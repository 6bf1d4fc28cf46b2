"""The gateway's HTTP values and the ASGI plumbing under them.

A raw ASGI callable rather than Starlette: measured on this machine (see the README's
gateway figures), Starlette's request / response objects and middleware stack cost
more per request than all of tollway's own work on a call, and the gateway needs only
three things from a framework: a route table, a body read with a size limit, and a
streamed response that notices a client hanging up. Those are below, in Starlette's
spirit: handlers are plain async functions over typed values.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tollway.core import json_codec
from tollway.gateway.errors import GatewayError

if TYPE_CHECKING:
    from tollway.core.cost.attribution import Attribution
    from tollway.gateway.keys import VirtualKey

__all__ = ["HttpRequest", "JSONReply", "StreamReply", "dumps", "read_body", "send_reply"]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


dumps = json_codec.dumps
"""A reply body as compact UTF-8 JSON (``core/json_codec``)."""


@dataclass(slots=True)
class HttpRequest:
    """One request: lower-case header names, the whole body, path parameters, and (once
    authenticated) the key and the attribution it grants."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    key: VirtualKey | None = None
    attribution: Attribution | None = None
    query: str = ""
    """The raw query string (``limit=2&after=x``)."""

    def json(self) -> Any:
        if not self.body:
            raise GatewayError(400, "the request needs a JSON body")
        try:
            return json_codec.loads(self.body)
        except json.JSONDecodeError as exc:
            raise GatewayError(400, f"the request body is not valid JSON: {exc.msg} at "
                                    f"position {exc.pos}") from None
        except UnicodeDecodeError:
            raise GatewayError(400, "the request body is not UTF-8 JSON") from None


@dataclass(slots=True)
class JSONReply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass(slots=True)
class StreamReply:
    """A streamed answer (SSE). ``chunks`` is closed when the client disconnects, which
    is what cancels the upstream stream behind it."""

    chunks: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    content_type: str = "text/event-stream"


Reply = JSONReply | StreamReply


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The whole request body, or GatewayError 413 as soon as it passes ``limit``."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError("client disconnected before sending the body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"the request body is larger than the gateway's limit of "
                             f"{limit} bytes (gateway.max_body_bytes in tollway.yaml)",
                        code="request_too_large")


def _raw_headers(content_type: str, headers: dict[str, str], length: int | None) -> list[tuple[bytes, bytes]]:
    raw = [(b"content-type", content_type.encode())]
    if length is not None:
        raw.append((b"content-length", str(length).encode()))
    raw.extend((k.encode(), v.encode()) for k, v in headers.items())
    return raw


async def send_reply(send: Send, receive: Receive, reply: Reply) -> Literal["sent", "disconnected"]:
    if isinstance(reply, JSONReply):
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": _raw_headers(reply.content_type, reply.headers, len(reply.body))})
        await send({"type": "http.response.body", "body": reply.body})
        return "sent"
    return await _send_stream(send, receive, reply)


async def _send_stream(send: Send, receive: Receive, reply: StreamReply) -> Literal["sent", "disconnected"]:
    """Pump ``reply.chunks`` to the client while watching for a disconnect; on one, the
    pump is cancelled (so the upstream read stops now, not at the next chunk) and the
    chunk iterator closed."""
    headers = {"cache-control": "no-cache", "x-accel-buffering": "no", **reply.headers}
    await send({"type": "http.response.start", "status": reply.status,
                "headers": _raw_headers(reply.content_type, headers, None)})

    async def pump() -> None:
        async for chunk in reply.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    pumping = asyncio.ensure_future(pump())
    watching = asyncio.ensure_future(watch())
    try:
        await asyncio.wait((pumping, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        outcome: Literal["sent", "disconnected"] = "sent"
        if not pumping.done():
            outcome = "disconnected"
            pumping.cancel()
        watching.cancel()
        try:
            await pumping
        except (asyncio.CancelledError, OSError):
            outcome = "disconnected"
        finally:
            aclose = getattr(reply.chunks, "aclose", None)
            if aclose is not None:
                await aclose()
    return outcome
