"""What the Anthropic dialect knows about Claude models, decided from the model name only.

One table (:data:`MODEL_TRAITS`) and one lookup (:func:`model_traits`) so every
model-dependent choice of the dialect is made here and can be read in one place:

- ``default_max_tokens``: Anthropic *requires* ``max_tokens``; when the caller gives
  none we send this. It is deliberately moderate, not the model's maximum, because
  budgets reserve the worst-case cost of a call from ``max_tokens`` before sending it.
- ``max_output_tokens``: the model's output ceiling; used only to cap the default when
  extended thinking adds its budget on top of the default answer room.
- ``native_structured_output``: whether the model takes ``output_config.format``
  (JSON-schema constrained decoding, GA for Claude 4.5 and later). Older models get a
  forced tool named after the format instead, which every Claude model supports.
- ``adaptive_thinking``: Claude Opus 4.7 and later generations reject
  ``thinking: {type: enabled, budget_tokens}`` (HTTP 400) and take
  ``thinking: {type: adaptive}`` with ``output_config.effort`` instead; they also reject
  ``temperature`` / ``top_p`` (``sampling_params`` False). Earlier models take a budget.

:func:`thinking_settings` turns a canonical ``Reasoning`` into what the model takes.

Names are matched loosely so provider spellings work too: ``claude-sonnet-4-5-20250929``,
``claude-3-5-sonnet-20241022``, Bedrock's ``anthropic.claude-opus-4-1-20250805-v1:0``,
Vertex's ``claude-sonnet-4-5@20250929``. A name that is not recognisably Claude (a proxy
alias) gets conservative traits: a forced tool for structured output, 8192 max tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tollway.core.errors import BadRequestError
from tollway.core.types import Reasoning


@dataclass(frozen=True, slots=True)
class ModelTraits:
    default_max_tokens: int
    max_output_tokens: int
    native_structured_output: bool
    adaptive_thinking: bool = False
    sampling_params: bool = True


_CLAUDE_NAME = re.compile(
    r"claude-(?:(?P<family>[a-z]+)-)?(?P<major>\d)(?:[-.](?P<minor>\d{1,2})(?!\d))?"
)

# (minimum version, traits) in descending order; the first row the model's version
# reaches wins. Versions are (major, minor): claude-3-5-sonnet is (3, 5), opus-4-1 (4, 1).
MODEL_TRAITS: tuple[tuple[tuple[int, int], ModelTraits], ...] = (
    # Claude Opus 4.7 and later generations: adaptive thinking only, no sampling params.
    ((4, 7), ModelTraits(8192, 64000, True, adaptive_thinking=True, sampling_params=False)),
    # Claude 4.5 / 4.6 (Sonnet/Haiku/Opus 4.5, 4.6, ..., Claude 5): structured outputs GA.
    ((4, 5), ModelTraits(8192, 64000, True)),
    # Claude Opus 4 / 4.1 (32k output) and Sonnet 4 (64k); see _OPUS_4_CAP below.
    ((4, 0), ModelTraits(8192, 64000, False)),
    # Claude 3.7 Sonnet.
    ((3, 7), ModelTraits(8192, 64000, False)),
    # Claude 3.5 Sonnet / Haiku.
    ((3, 5), ModelTraits(8192, 8192, False)),
    # Claude 3 Haiku / Sonnet / Opus and anything older.
    ((0, 0), ModelTraits(4096, 4096, False)),
)
_OPUS_4_CAP = 32000
UNKNOWN_MODEL_TRAITS = ModelTraits(8192, 64000, False)


def model_version(model: str) -> tuple[str | None, int, int] | None:
    """``(family, major, minor)`` parsed from a Claude model name, or None."""
    match = _CLAUDE_NAME.search(model.lower())
    if match is None:
        return None
    family = match.group("family")
    return family, int(match.group("major")), int(match.group("minor") or 0)


def model_traits(model: str) -> ModelTraits:
    """The traits the dialect uses for ``model`` (see the module docstring)."""
    parsed = model_version(model)
    if parsed is None:
        return UNKNOWN_MODEL_TRAITS
    family, major, minor = parsed
    for minimum, traits in MODEL_TRAITS:
        if (major, minor) >= minimum:
            if family == "opus" and (4, 0) <= (major, minor) < (4, 5):
                return ModelTraits(traits.default_max_tokens, _OPUS_4_CAP, False)
            return traits
    return UNKNOWN_MODEL_TRAITS  # pragma: no cover - the (0, 0) row always matches


# Reasoning.effort -> thinking.budget_tokens, for callers who give an OpenAI-style effort
# level instead of a budget (models that take a budget). Anthropic's minimum is 1024.
# On adaptive-thinking models the same numbers are the output room set aside for thinking
# when tollway picks max_tokens, and map a given budget back to the nearest effort.
EFFORT_BUDGET_TOKENS: dict[str, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
    "max": 32768,
}
_NO_THINKING_EFFORTS = frozenset({"none", "off", "disabled"})
MIN_THINKING_BUDGET = 1024


@dataclass(frozen=True, slots=True)
class ThinkingSettings:
    """What to send for a Reasoning request on one model."""

    thinking: dict[str, Any]
    """The ``thinking`` body field."""
    effort: str | None
    """``output_config.effort`` (adaptive-thinking models), else None."""
    budget_tokens: int | None
    """The hard thinking budget (budget models); ``max_tokens`` must exceed it."""
    room_tokens: int
    """Output tokens to add to the default ``max_tokens`` so the answer keeps its room."""


def thinking_settings(reasoning: Reasoning | None, traits: ModelTraits) -> ThinkingSettings | None:
    """The thinking request for ``reasoning`` on a model with ``traits``; None for none.

    Budget models: ``{type: enabled, budget_tokens}``, the budget from ``budget_tokens``
    or from :data:`EFFORT_BUDGET_TOKENS`. Adaptive models: ``{type: adaptive, display}``
    plus an effort (given, or the nearest to a given budget); ``display`` is
    ``summarized`` unless ``include_thoughts`` is False (those models omit the thinking
    text by default, which would silently hide it).
    """
    if reasoning is None:
        return None
    budget = thinking_budget(reasoning.effort, reasoning.budget_tokens)
    if budget is None:
        return None
    if not traits.adaptive_thinking:
        return ThinkingSettings({"type": "enabled", "budget_tokens": budget}, None, budget, budget)
    if reasoning.budget_tokens is None and reasoning.effort is not None:
        effort = reasoning.effort.lower()
        effort = "low" if effort == "minimal" else effort
    else:
        levels = ("low", "medium", "high")  # xhigh is not on every adaptive model
        effort = next((e for e in levels if EFFORT_BUDGET_TOKENS[e] >= budget), "max")
    display = "summarized" if reasoning.include_thoughts else "omitted"
    return ThinkingSettings({"type": "adaptive", "display": display}, effort, None, budget)


def thinking_budget(effort: str | None, budget_tokens: int | None) -> int | None:
    """The thinking budget to send, or None for no extended thinking.

    An explicit ``budget_tokens`` wins over ``effort``; 0 means "no thinking".
    """
    if budget_tokens is not None:
        if budget_tokens <= 0:
            return None
        if budget_tokens < MIN_THINKING_BUDGET:
            raise BadRequestError(
                f"reasoning budget_tokens={budget_tokens} is below Anthropic's minimum of "
                f"{MIN_THINKING_BUDGET}; raise it or leave reasoning off"
            )
        return budget_tokens
    if effort is None:
        return None
    key = effort.lower()
    if key in _NO_THINKING_EFFORTS:
        return None
    budget = EFFORT_BUDGET_TOKENS.get(key)
    if budget is None:
        known = ", ".join([*EFFORT_BUDGET_TOKENS, "none"])
        raise BadRequestError(
            f"reasoning effort {effort!r} is not known to the Anthropic dialect; use one of "
            f"{known}, or give Reasoning(budget_tokens=...) directly"
        )
    return budget
