"""The three wire dialects, as the framework adapter tests script them.

Each :class:`FakeDialect` pairs a tollway target (``provider/model``) with the reply
builders in ``tests/fakes/replies_<dialect>.py`` (replies written by hand in each
provider's wire shape), so one framework test runs unchanged against OpenAI chat
completions, Anthropic Messages and Gemini. A dialect whose module or reply builders
are not there yet is skipped, not failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from tests.fakes.server import Reply

DIALECTS = ("openai", "anthropic", "gemini")

_SPEC = {
    "openai": ("openai/gpt-4o-mini", "tollway.core.dialects.openai_chat", "tests.fakes.replies_openai"),
    "anthropic": (
        "anthropic/claude-sonnet-4-5", "tollway.core.dialects.anthropic",
        "tests.fakes.replies_anthropic",
    ),
    "gemini": ("gemini/gemini-2.5-flash", "tollway.core.dialects.gemini", "tests.fakes.replies_gemini"),
}


@dataclass(frozen=True)
class FakeDialect:
    name: str
    target: str
    replies: ModuleType

    def text(self, text: str) -> Reply:
        return self.replies.text_reply(text)

    def tool_calls(self, *calls: tuple[str, dict[str, Any]]) -> Reply:
        return self.replies.tool_call_reply(list(calls))

    def text_stream(self, *pieces: str) -> Reply:
        return self.replies.text_stream(list(pieces))

    def tool_calls_stream(self, *calls: tuple[str, dict[str, Any]]) -> Reply:
        return self.replies.tool_call_stream(list(calls))


def fake_dialect(name: str) -> FakeDialect:
    """The dialect ``name``, or a skip when its dialect or reply builders are missing."""
    target, dialect_module, replies_module = _SPEC[name]
    pytest.importorskip(dialect_module, reason=f"the {name} dialect is not written yet")
    replies = pytest.importorskip(replies_module, reason=f"no fake {name} replies yet")
    return FakeDialect(name, target, replies)
