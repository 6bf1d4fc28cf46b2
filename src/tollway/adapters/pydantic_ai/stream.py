"""TollwayStreamedResponse: a tollway stream as Pydantic AI stream events.

Text, thinking and tool-call deltas go through Pydantic AI's parts manager (so
``run_stream`` sees text and output-tool arguments as they arrive); a generated image
arrives whole, as a ``FilePart`` of a ``BinaryImage``. Parts are keyed the
way tollway's StreamAccumulator splits them, and provider data / thinking signatures
are passed merged-so-far on every delta that carries some, so the streamed
``ModelResponse`` equals the non-streamed one. Usage and tollway's cost are set from
the final Response (tollway's ``StreamEnd``), which is what the ledger recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic_ai._utils import now_utc
from pydantic_ai.messages import ModelResponseStreamEvent
from pydantic_ai.models import StreamedResponse

from tollway.adapters.pydantic_ai.convert import (
    DATA_KEY,
    FINISH_REASONS,
    image_part,
    request_usage,
    response_details,
    thinking_details,
)
from tollway.adapters.pydantic_ai.errors import mapped_errors
from tollway.core.model import AsyncResponseStream
from tollway.core.types import (
    FinishEvent,
    ImageEvent,
    ProviderData,
    Response,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolCallDelta,
    UsageEvent,
)


def _merged(a: ProviderData | None, b: ProviderData | None) -> ProviderData | None:
    """Provider data of one part so far, merged as tollway's StreamAccumulator merges it
    (one level deep: a dialect's own dict is updated, not replaced)."""
    if not b:
        return a
    out = dict(a or {})
    for key, value in b.items():
        old = out.get(key)
        out[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
    return out


@dataclass
class TollwayStreamedResponse(StreamedResponse):
    """Implementation of ``StreamedResponse`` over a tollway ``AsyncResponseStream``
    that is already open (primed up to its first token)."""

    _model_name: str
    _provider_name: str
    _provider_url: str | None
    _stream: AsyncResponseStream
    _timestamp: datetime = field(default_factory=now_utc)
    _open: Hashable | None = field(default=None, init=False)
    _segment: int = field(default=0, init=False)
    _calls: set[int] = field(default_factory=set, init=False)
    _data: dict[Hashable, ProviderData] = field(default_factory=dict, init=False)
    _thinking: dict[Hashable, Thinking] = field(default_factory=dict, init=False)

    def _text_id(self, key: tuple[str, int]) -> Hashable:
        """The vendor part id for text / thinking ``key``: a new part whenever the kind
        or block changes, exactly as tollway's StreamAccumulator starts a new part."""
        if key != self._open:
            self._open = key
            self._segment += 1
        return (key, self._segment)

    def _details(self, part_id: Hashable, data: ProviderData | None) -> dict[str, Any] | None:
        merged = _merged(self._data.get(part_id), data)
        if not merged:
            return None
        self._data[part_id] = merged
        return {DATA_KEY: merged}

    async def _get_event_iterator(self) -> AsyncIterator[ModelResponseStreamEvent]:
        with mapped_errors(self._model_name, in_stream=True):
            async for event in self._stream:
                for out in self._map(event):
                    yield out

    def _map(self, event: StreamEvent) -> Iterable[ModelResponseStreamEvent]:
        provider = self._provider_name
        if isinstance(event, TextDelta):
            part_id = self._text_id(("text", event.block))
            details = self._details(part_id, event.provider_data)
            return self._parts_manager.handle_text_delta(
                vendor_part_id=part_id, content=event.text,
                provider_name=provider if details else None, provider_details=details,
            )
        if isinstance(event, ThinkingDelta):
            return self._map_thinking(event)
        if isinstance(event, ToolCallDelta):
            if event.index not in self._calls:
                self._calls.add(event.index)
                self._open = ("tool", event.index)
            part_id = ("tool", event.index)
            details = self._details(part_id, event.provider_data)
            return self._parts_manager.handle_tool_call_delta_events(
                vendor_part_id=part_id, tool_name=event.name, args=event.arguments or None,
                tool_call_id=event.id or None,
                provider_name=provider if details else None, provider_details=details,
            )
        if isinstance(event, ImageEvent):
            file = image_part(event.image, provider)
            if file is None:
                return ()
            self._open = None
            return (self._parts_manager.handle_part(vendor_part_id=None, part=file),)
        if isinstance(event, UsageEvent):
            self._add_usage(request_usage(event.usage, None), reported=True, cumulative=True)
        elif isinstance(event, FinishEvent):
            self.finish_reason = FINISH_REASONS.get(event.finish_reason)
        elif isinstance(event, StreamStart):
            self.provider_response_id = event.id or self.provider_response_id
        elif isinstance(event, StreamEnd):
            self._end(event.response)
        return ()

    def _map_thinking(self, event: ThinkingDelta) -> Iterable[ModelResponseStreamEvent]:
        """Thinking text streams as deltas; the signature, redacted data, provider and
        provider data are passed as their totals so far (Pydantic AI replaces them)."""
        part_id = self._text_id(("thinking", event.block))
        so_far = self._thinking.setdefault(part_id, Thinking())
        if event.signature:
            so_far.signature = (so_far.signature or "") + event.signature
        if event.redacted:
            so_far.redacted = (so_far.redacted or "") + event.redacted
        so_far.provider = so_far.provider or event.provider
        so_far.provider_data = _merged(so_far.provider_data, event.provider_data)
        details = thinking_details(so_far)
        signature = so_far.signature if event.signature else None
        if not event.text and signature is None and details is None:
            return ()
        named = so_far.signature is not None or details is not None
        return self._parts_manager.handle_thinking_delta(
            vendor_part_id=part_id, content=event.text or None, signature=signature,
            provider_name=self._provider_name if named else None,
            provider_details=details,
        )

    def _end(self, response: Response) -> None:
        """The complete Response: usage with tollway's cost, ids and finish reason."""
        self._add_usage(request_usage(response.usage, response.cost), reported=True,
                        cumulative=True)
        self.provider_response_id = response.id or self.provider_response_id
        self.finish_reason = FINISH_REASONS.get(response.finish_reason)
        self.provider_details = response_details(response)
        self._model_name = response.model or self._model_name

    async def close_stream(self) -> None:
        await self._stream.aclose()

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def provider_name(self) -> str:
        return self._provider_name

    @property
    def provider_url(self) -> str | None:
        return self._provider_url

    @property
    def timestamp(self) -> datetime:
        return self._timestamp
