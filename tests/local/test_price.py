"""A local model's calls cost 0 unless a price is configured (never "unknown")."""

from __future__ import annotations

import warnings

from tollway.core.cost.pricing import PriceBook
from tollway.core.types import Usage


def test_local_calls_are_priced_at_zero_by_default_without_an_unpriced_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an UnpricedModelWarning would fail the test
        assert PriceBook().price("local", "qwen2.5-coder-0.5b", Usage(1200, 300)) == 0


def test_a_configured_price_for_local_models_wins_over_zero() -> None:
    book = PriceBook({"local/*": {"input": 1, "output": 2}})
    assert book.price("local", "any", Usage(1_000_000, 1_000_000)) == 3_000_000_000
