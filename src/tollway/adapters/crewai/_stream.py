"""A tollway stream relayed as CrewAI stream events.

``Crew(stream=True)`` turns ``stream`` on for every agent's LLM and collects
``LLMStreamChunkEvent`` / ``LLMThinkingChunkEvent`` from the event bus into the
crew's streaming output; the LLM call itself still returns the full text. This module
emits those events, with the same payloads CrewAI's native OpenAI provider uses (a
tool-call chunk carries the call's arguments accumulated so far), while the tollway
stream folds itself into the complete Response (usage and cost included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crewai.events.types.llm_events import LLMCallType

from tollway.adapters.crewai._convert import tool_call_chunk
from tollway.core.types import StreamStart, TextDelta, ThinkingDelta, ToolCallDelta

if TYPE_CHECKING:
    from crewai.llms.base_llm import BaseLLM

    from tollway.core.model import AsyncResponseStream, ResponseStream
    from tollway.core.types import Response, StreamEvent


class ChunkRelay:
    """Turns each tollway stream event into the CrewAI event for it (one per stream)."""

    __slots__ = ("_calls", "from_agent", "from_task", "llm", "response_id")

    def __init__(self, llm: BaseLLM, from_task: Any, from_agent: Any) -> None:
        self.llm = llm
        self.from_task = from_task
        self.from_agent = from_agent
        self.response_id: str | None = None
        self._calls: dict[int, list[Any]] = {}
        """index -> [id, name, arguments so far]"""

    def relay(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            if event.text:
                self.llm._emit_stream_chunk_event(
                    chunk=event.text, from_task=self.from_task, from_agent=self.from_agent,
                    response_id=self.response_id,
                )
        elif isinstance(event, ToolCallDelta):
            call = self._calls.setdefault(event.index, [None, "", ""])
            if event.id:
                call[0] = event.id
            if event.name:
                call[1] = event.name
            call[2] += event.arguments
            self.llm._emit_stream_chunk_event(
                chunk=event.arguments, from_task=self.from_task, from_agent=self.from_agent,
                tool_call=tool_call_chunk(call[0], call[1], call[2], event.index),
                call_type=LLMCallType.TOOL_CALL, response_id=self.response_id,
            )
        elif isinstance(event, ThinkingDelta):
            if event.text:
                self.llm._emit_thinking_chunk_event(
                    chunk=event.text, from_task=self.from_task, from_agent=self.from_agent,
                    response_id=self.response_id,
                )
        elif isinstance(event, StreamStart):
            self.response_id = event.id or self.response_id


def relay_stream(stream: ResponseStream, relay: ChunkRelay) -> Response:
    """Consume a sync tollway stream, emitting CrewAI events; the complete Response."""
    with stream:
        for event in stream:
            relay.relay(event)
    assert stream.response is not None  # a stream that ended normally has its Response
    return stream.response


async def arelay_stream(stream: AsyncResponseStream, relay: ChunkRelay) -> Response:
    """The async twin of :func:`relay_stream`."""
    async with stream:
        async for event in stream:
            relay.relay(event)
    assert stream.response is not None
    return stream.response
