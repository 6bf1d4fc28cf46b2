"""Scripts for the LangGraph and Pydantic AI adapter tests, in all three wire dialects.

A :class:`Script` pairs a tollway target (``provider/model``) with the hand-written reply
builders in ``tests/fakes/replies_<dialect>.py`` and pins the usage of every reply to a
canonical :class:`~tollway.core.types.Usage` (translated into each provider's own usage
shape), so a test can compare the framework's usage totals with the ledger's exactly.
A dialect whose module or reply builders are missing is skipped, not failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from tests.fakes.server import Reply
from tollway.core.cost.ledger import Ledger
from tollway.core.types import Usage

KEY = "sk-test-adapter-key-0123456789"
DIALECTS = ("openai", "anthropic", "gemini")
_SPEC = {
    "openai": ("openai/gpt-4o-mini", "tollway.core.dialects.openai_chat",
               "tests.fakes.replies_openai"),
    "anthropic": ("anthropic/claude-sonnet-4-5", "tollway.core.dialects.anthropic",
                  "tests.fakes.replies_anthropic"),
    "gemini": ("gemini/gemini-2.5-flash", "tollway.core.dialects.gemini",
               "tests.fakes.replies_gemini"),
}

USAGE_A = Usage(input_tokens=1_200, output_tokens=40, cache_read_tokens=1_000)
USAGE_B = Usage(input_tokens=1_500, output_tokens=25, cache_read_tokens=1_024)


@dataclass(frozen=True)
class Script:
    name: str
    target: str
    replies: ModuleType

    @property
    def model(self) -> str:
        return self.target.partition("/")[2]

    def _usage(self, usage: Usage | None) -> Any:
        u = usage or USAGE_A
        if self.name != "anthropic":
            return u
        return self.replies.wire_usage(
            u.input_tokens - u.cache_read_tokens - u.cache_write_tokens,
            u.output_tokens, cache_read=u.cache_read_tokens, cache_write=u.cache_write_tokens,
        )

    def text(self, text: str, usage: Usage | None = None) -> Reply:
        return self.replies.text_reply(text, usage=self._usage(usage))

    def calls(self, *calls: tuple[str, dict[str, Any]], usage: Usage | None = None) -> Reply:
        return self.replies.tool_call_reply(list(calls), usage=self._usage(usage))

    def text_stream(self, *pieces: str, usage: Usage | None = None) -> Reply:
        return self.replies.text_stream(list(pieces), usage=self._usage(usage))

    def calls_stream(self, *calls: tuple[str, dict[str, Any]], usage: Usage | None = None) -> Reply:
        return self.replies.tool_call_stream(list(calls), usage=self._usage(usage))

    def error(self, status: int, message: str) -> Reply:
        return self.replies.error_reply(status, message)


def script(name: str) -> Script:
    target, dialect_module, replies_module = _SPEC[name]
    pytest.importorskip(dialect_module, reason=f"the {name} dialect is not written yet")
    replies = pytest.importorskip(replies_module, reason=f"no fake {name} replies yet")
    return Script(name, target, replies)


def totals(ledger: Ledger, **filters: Any) -> tuple[int, int, int]:
    """(calls, input tokens, output tokens) recorded in ``ledger``."""
    from tollway.core.reports import spend

    rows = spend(ledger, group_by=["kind"], filters=filters or None)
    return (sum(r.calls for r in rows), sum(r.input_tokens for r in rows),
            sum(r.output_tokens for r in rows))


def records(ledger: Ledger) -> list[Any]:
    """Every ledger row, oldest first."""
    rows = ledger.records()  # type: ignore[attr-defined]
    return sorted(rows, key=lambda r: r.time)
