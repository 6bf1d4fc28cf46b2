"""smolagents' history with remembered reasoning turns put back (see
``tollway.adapters._turns``).

smolagents folds a tool call into an assistant ``"Calling tools: [...]"`` text and its
result into a user ``"Observation: ..."`` text before every call. For a turn whose
Response carried reasoning state (a Responses encrypted reasoning item, Anthropic signed
thinking), the adapter sends that turn as it really was instead: the remembered
assistant Message (reasoning, text, tool calls with their ids) and one tool result per
call holding the observation text. Every other message keeps smolagents' own folding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from smolagents.models import ChatMessage, MessageRole

from tollway.adapters._turns import ReasoningTurns
from tollway.core.types import Message

_OBSERVATION = "Observation:\n"


def _role(message: Any) -> str:
    role = message.role if isinstance(message, ChatMessage) else message.get("role")
    return role.value if isinstance(role, MessageRole) else str(role)


def _text(message: Any) -> str:
    content = message.content if isinstance(message, ChatMessage) else message.get("content")
    if isinstance(content, str):
        return content
    return "".join(
        str(p.get("text") or "") for p in content or () if isinstance(p, dict)
    )


def with_remembered_turns(
    messages: Sequence[Any],
    turns: ReasoningTurns,
    clean: Callable[[list[Any]], list[dict[str, Any]]],
) -> list[Any]:
    """``messages`` cleaned by ``clean`` (smolagents' folding), except remembered
    tool-call turns, which become tollway Messages (module docstring)."""
    if not len(turns):
        return clean(list(messages))
    out: list[Any] = []
    pending: list[Any] = []  # smolagents messages not yet cleaned
    i = 0
    while i < len(messages):
        message = messages[i]
        found = turns.turn_mentioned_in(_text(message)) if _role(message) == "tool-call" else None
        answer = _tool_response_after(messages, i) if found else None
        if found is None or answer is None:
            pending.append(message)
            i += 1
            continue
        ids, turn = found
        if pending and _role(pending[-1]) == "assistant" and (
            _text(pending[-1]).strip() == turn.text.strip()
        ):
            pending.pop()  # the step's own text: it is part of the remembered turn
        out.extend(clean(pending))
        pending = []
        out.append(turn)
        observation = _text(messages[answer]).removeprefix(_OBSERVATION)
        out.extend(Message.tool(call_id, observation) for call_id in ids)
        pending.extend(messages[i + 1 : answer])  # e.g. observation images, after results
        i = answer + 1
    out.extend(clean(pending))
    return out


def _tool_response_after(messages: Sequence[Any], start: int) -> int | None:
    """The index of the tool response answering the tool call at ``start``."""
    for j in range(start + 1, len(messages)):
        role = _role(messages[j])
        if role == "tool-response":
            return j
        if role in ("assistant", "tool-call"):
            return None
    return None
