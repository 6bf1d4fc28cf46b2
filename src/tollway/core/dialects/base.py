"""The contract every dialect implements: pure functions over dicts and bytes.

A dialect never opens a socket, reads an environment variable or holds global state;
it can be tested by feeding it a recorded body. Credentials, base URLs and auth headers
belong to the provider table (``core/providers.py``), not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tollway.core import json_codec
from tollway.core.errors import ProviderError, StreamError, scrub
from tollway.core.media_types import (
    EmbeddingRequest,
    EmbeddingResponse,
    ImageRequest,
    ImageResponse,
)
from tollway.core.types import Request, Response, StreamEvent


@dataclass(slots=True)
class HttpRequest:
    """What to send: ``path`` is appended to the deployment's base URL (it may carry a
    query string); ``headers`` are dialect headers (API version, betas), not auth.

    ``content`` replaces the JSON body when set (a multipart image edit); its
    ``content-type`` then comes in ``headers``."""

    path: str
    json: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    content: bytes | None = None


@dataclass(slots=True)
class SSEEvent:
    """One server-sent event as the SSE decoder produced it."""

    data: str
    event: str | None = None
    id: str | None = None


def sse_json(data: str, what: str = "stream event") -> dict[str, Any]:
    """The JSON object one SSE event carries; a StreamError (with an excerpt) when it is
    not valid JSON or not an object, so a malformed stream never passes as an answer."""
    try:
        payload = json_codec.loads(data)
    except ValueError as exc:
        raise StreamError(
            f"a {what} is not valid JSON ({exc.args[0] if exc.args else exc}); "
            f"it starts with: {scrub(data, 120)}",
            body=data,
        ) from None
    if not isinstance(payload, dict):
        raise StreamError(
            f"a {what} must be a JSON object, got {type(payload).__name__}", body=data
        )
    return payload


class StreamParser(Protocol):
    """Stateful parser for one streamed response (one instance per stream)."""

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """Translate one SSE event; raise a ProviderError for an in-stream error event."""
        ...

    def close(self) -> list[StreamEvent]:
        """The stream ended: flush what is pending; raise StreamError if the provider
        never finished it (a cut connection must not pass as a complete answer)."""
        ...


class Dialect(Protocol):
    """One wire format (OpenAI chat completions, Anthropic Messages, Gemini)."""

    @property
    def name(self) -> str:
        """The key of this dialect's ``provider_data`` (``"openai_chat"``...)."""
        ...

    def build_request(self, request: Request, model: str, *, stream: bool) -> HttpRequest: ...

    def parse_response(self, body: Mapping[str, Any], request: Request | None, model: str) -> Response: ...

    def stream_parser(self, request: Request | None, model: str) -> StreamParser: ...

    def parse_error(
        self, status: int, body: bytes | str, headers: Mapping[str, str]
    ) -> ProviderError: ...


# --------------------------------------------------------------------------- embeddings, images


@dataclass(slots=True)
class Exchange:
    """One HTTP request of a call that may need several: a batch of the texts to embed
    (``inputs``), or ``count`` of the images asked for. The Model sends each in order and
    hands each answer back to the dialect with its Exchange."""

    http: HttpRequest
    inputs: list[str] = field(default_factory=list)
    count: int = 1


class EmbeddingDialect(Protocol):
    """One embeddings wire format (OpenAI ``/embeddings``, Gemini, Vertex ``:predict``)."""

    @property
    def name(self) -> str: ...

    def exchanges(self, request: EmbeddingRequest, model: str) -> list[Exchange]:
        """The requests that embed every input, batched to the provider's limits, in
        input order (the Model concatenates the answers in this order)."""
        ...

    def parse_response(
        self, body: Mapping[str, Any], exchange: Exchange, model: str
    ) -> EmbeddingResponse:
        """One batch's answer: one vector per ``exchange.inputs``, in their order."""
        ...

    def parse_error(
        self, status: int, body: bytes | str, headers: Mapping[str, str]
    ) -> ProviderError: ...


class ImageDialect(Protocol):
    """One image-generation wire format (OpenAI images, Gemini image output, Imagen)."""

    @property
    def name(self) -> str: ...

    def exchanges(self, request: ImageRequest, model: str) -> list[Exchange]:
        """The requests that produce ``request.n`` images (one, unless the API makes one
        image per request)."""
        ...

    def parse_response(
        self, body: Mapping[str, Any], exchange: Exchange, request: ImageRequest, model: str
    ) -> ImageResponse: ...

    def parse_error(
        self, status: int, body: bytes | str, headers: Mapping[str, str]
    ) -> ProviderError: ...
