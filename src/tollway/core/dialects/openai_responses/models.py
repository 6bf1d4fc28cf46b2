"""Model-name knowledge for the Responses API: which models exist only there, which
reason (so their reasoning state must travel between turns).

Pure string tests, imported by the provider table to pick the API of a deployment, so
this module stays tiny and imports nothing.
"""

from __future__ import annotations

import re

_RESPONSES_ONLY = re.compile(
    r"^(?:gpt-5(?:\.\d+)?-pro|o1-pro|o3-pro|o3-deep-research|o4-mini-deep-research"
    r"|computer-use-preview|codex-mini|gpt-5(?:\.\d+)?-codex(?:-mini|-max)?)(?:$|-)"
)
"""OpenAI models served only on ``/v1/responses`` (a dated snapshot such as
``o3-pro-2025-06-10`` matches its family); chat completions answers them with 404."""

_REASONING = re.compile(r"^(?:o\d|gpt-5|codex|computer-use|gpt-oss)")
"""Models that produce reasoning items (gpt-5-chat does not: it is the chat model)."""


def _base(model: str) -> str:
    """``openai/o3-pro`` or an Azure-style path -> the bare lower-case model name."""
    return model.rsplit("/", 1)[-1].lower()


def responses_only(model: str) -> bool:
    """True for models that OpenAI serves only on the Responses API."""
    return _RESPONSES_ONLY.match(_base(model)) is not None


def reasons(model: str) -> bool:
    """True for models that return reasoning items (and so accept them back)."""
    name = _base(model)
    return _REASONING.match(name) is not None and not name.startswith("gpt-5-chat")
