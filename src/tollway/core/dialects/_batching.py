"""Splitting texts to embed into the batches a provider accepts (sans-I/O).

Providers cap a request by its number of inputs (OpenAI 2,048, Gemini 100) and some by
its total tokens (OpenAI 300,000). Batches are consecutive slices, so concatenating the
answers in batch order gives the vectors in input order. Tokens are estimated the way
budgets estimate them (4 ASCII characters a token, one a token otherwise), which never
undercounts by more than a small margin; the token cap is therefore applied with room.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["batches", "estimate_tokens"]


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` by the budget estimator's rule (no tokenizer is loaded)."""
    if not text:
        return 0
    if text.isascii():
        return -(-len(text) // 4)
    other = len(text) - len(text.encode("ascii", "ignore"))
    return -(-(len(text) - other) // 4) + other


def batches(
    texts: Sequence[str], max_inputs: int, max_tokens: int | None = None
) -> list[list[str]]:
    """``texts`` cut into consecutive batches of at most ``max_inputs`` texts and (when
    given) ``max_tokens`` estimated tokens; a single text above the token cap goes alone
    (the provider then says what it thinks of it)."""
    out: list[list[str]] = []
    current: list[str] = []
    tokens = 0
    for text in texts:
        cost = estimate_tokens(text) if max_tokens is not None else 0
        full = len(current) >= max_inputs or (
            max_tokens is not None and current and tokens + cost > max_tokens
        )
        if full:
            out.append(current)
            current, tokens = [], 0
        current.append(text)
        tokens += cost
    if current:
        out.append(current)
    return out
