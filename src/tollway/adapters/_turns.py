"""Tool-call turns whose reasoning state a framework cannot carry, kept by the adapter.

Some frameworks rebuild the conversation from their own message types, which hold only
text and tool calls: CrewAI sends OpenAI-style dicts, smolagents folds a tool call into
``"Calling tools: ..."`` text. What a provider needs back on the next round is lost on
the way: the Responses API's encrypted reasoning item (and the item ids tied to it),
Anthropic's signed thinking blocks. So the adapter remembers the assistant turn of each
Response that carried such state, keyed by its tool-call ids, and puts the whole turn
back when the framework's history shows those calls again. Turns without reasoning
state are never touched, so every other request is exactly what the framework sent.

Framework-free (plain tollway types), bounded (the oldest turns are forgotten first) and
safe to share between threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from tollway.core.types import Message, Response, Thinking

_MAX_TURNS = 512


def carries_reasoning_state(response: Response) -> bool:
    """True when a tool-call turn holds reasoning the provider wants back."""
    return bool(response.tool_calls) and any(
        isinstance(p, Thinking) and (p.provider_data or p.signature or p.redacted)
        for p in response.parts
    )


class ReasoningTurns:
    """Assistant turns by tool-call id (see the module docstring)."""

    __slots__ = ("_lock", "_turns")

    def __init__(self) -> None:
        self._turns: OrderedDict[tuple[str, ...], Message] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, response: Response) -> None:
        if not carries_reasoning_state(response):
            return
        key = tuple(call.id for call in response.tool_calls)
        with self._lock:
            self._turns[key] = response.to_message()
            self._turns.move_to_end(key)
            while len(self._turns) > _MAX_TURNS:
                self._turns.popitem(last=False)

    def turn(self, call_ids: Sequence[str]) -> Message | None:
        """The remembered turn that made exactly these calls, if any."""
        with self._lock:
            return self._turns.get(tuple(call_ids))

    def turn_mentioned_in(self, text: str) -> tuple[tuple[str, ...], Message] | None:
        """The remembered turn whose every call id appears in ``text`` (smolagents'
        ``Calling tools: [...]`` message), with its ids."""
        with self._lock:
            for ids, message in reversed(self._turns.items()):
                if ids and all(f"'{i}'" in text or f'"{i}"' in text for i in ids):
                    return ids, message
        return None

    def restore_openai(self, messages: Sequence[Any]) -> list[Any]:
        """OpenAI-style dicts with each remembered assistant tool-call turn replaced by
        the tollway Message it came from (the tool results that follow stay as sent)."""
        out: list[Any] = []
        for message in messages:
            if isinstance(message, Mapping) and message.get("role") == "assistant":
                calls = message.get("tool_calls") or ()
                ids = [str(c.get("id") or "") for c in calls if isinstance(c, Mapping)]
                turn = self.turn(ids) if ids and all(ids) else None
                if turn is not None:
                    out.append(turn)
                    continue
            out.append(message)
        return out

    def __len__(self) -> int:
        return len(self._turns)
