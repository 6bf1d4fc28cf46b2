"""A stream the caller closes before the provider reported usage (OpenAI sends it only in
the last chunk) is still charged: its ledger row carries an estimate (input from the
request, output from the deltas received), marked as estimated in ``error``, priced, and
settled against the budget. A stream whose provider reported usage before the close
keeps the reported figures, unmarked."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import Driver
from tests.core.cost.budgets import support
from tests.fakes import replies_anthropic as ant
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider, Reply
from tollway.core.cost.budgets import Budgets
from tollway.core.cost.estimate import estimate_input_tokens
from tollway.core.inputs import build_request
from tollway.core.model import Model
from tollway.core.stores.sqlite_budgets import SQLiteBudgetStore
from tollway.core.stores.sqlite_ledger import SQLiteLedger
from tollway.core.streams import ESTIMATED_MARK
from tollway.core.types import Message, TextDelta, ToolCallDelta

PRICE = {"input": 2, "output": 10}  # USD per million tokens
PIECES = ["Hello", " there", ", friend", "! This", " goes on", " and on"] * 5
PROMPT = "Please write a long greeting for my friend."


def _model(fake: FakeProvider, tmp_path: Path, model: str = support.MODEL) -> tuple[Model, SQLiteLedger, Budgets]:
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    guard = Budgets([support.usd_budget("1")], store=SQLiteBudgetStore(tmp_path / "budgets.db"),
                    prices=support.pricebook({**PRICE}) if model == support.MODEL else None)
    prices = guard.prices if model == support.MODEL else None
    built = Model(model, api_key=support.KEY, api_base=fake.url, guards=[guard], ledger=ledger,
                  prices=prices, config=False)
    return built, ledger, guard


def _spaced(reply: Reply) -> Reply:
    """Chunks sent apart, as a provider generates them (sent at once, the usage chunk
    would arrive in the same read as the first delta, and be reported)."""
    reply.chunk_delay = 0.02
    return reply


def _settled(guard: Budgets) -> tuple[int, int]:
    [counter] = guard.store.counters(time.time())
    return counter.reserved, counter.spent


def test_an_openai_stream_closed_early_is_charged_an_estimate_marked_in_its_row(
    fake: FakeProvider, driver: Driver, tmp_path: Path
) -> None:
    fake.add(_spaced(oai.text_stream(PIECES)))
    model, ledger, guard = _model(fake, tmp_path)
    got = driver.stream_collect(model, PROMPT, take=5)
    texts = "".join(e.text for e in got.events if isinstance(e, TextDelta))
    assert texts and "".join(PIECES).startswith(texts)  # some text arrived, then the close

    [row] = ledger.records()
    assert row.status == "cancelled"
    assert row.stream is True
    expected_in = estimate_input_tokens(build_request([Message.user(PROMPT)]))
    expected_out = -(-len(texts) // 4)  # ASCII: 4 characters a token, rounded up
    assert (row.usage.input_tokens, row.usage.output_tokens) == (expected_in, expected_out)
    assert expected_out > 0
    assert row.error is not None and ESTIMATED_MARK in row.error
    assert f"{expected_in} input / {expected_out} output" in row.error
    assert row.cost_nanos == expected_in * 2_000 + expected_out * 10_000  # nano-USD a token
    assert _settled(guard) == (0, row.cost_nanos)  # charged to the budget, hold released


def test_tool_argument_deltas_count_as_output(
    fake: FakeProvider, driver: Driver, tmp_path: Path
) -> None:
    args = {"city": "Oslo", "units": "metric", "detail": "a long description " * 4}
    fake.add(_spaced(oai.tool_call_stream([("get_weather", args)])))
    model, ledger, _ = _model(fake, tmp_path)
    got = driver.stream_collect(
        model, PROMPT, until=lambda e: isinstance(e, ToolCallDelta) and bool(e.arguments))
    received = "".join((e.name or "") + e.arguments for e in got.events if isinstance(e, ToolCallDelta))
    [row] = ledger.records()
    assert row.status == "cancelled"
    assert row.usage.output_tokens == -(-len(received) // 4) > 1  # the name and the fragment
    assert row.error is not None and ESTIMATED_MARK in row.error


def test_usage_reported_before_the_close_is_kept_not_estimated(
    fake: FakeProvider, driver: Driver, tmp_path: Path
) -> None:
    fake.add(ant.text_stream(PIECES))  # Anthropic reports input tokens in message_start
    model, ledger, _ = _model(fake, tmp_path, "anthropic/claude-sonnet-4-5-20250929")
    driver.stream_collect(model, PROMPT, take=4)
    [row] = ledger.records()
    assert row.status == "cancelled"
    assert row.usage.input_tokens == 212 + 1536
    assert ESTIMATED_MARK not in (row.error or "")


def test_a_stream_read_to_the_end_has_no_estimate(
    fake: FakeProvider, driver: Driver, tmp_path: Path
) -> None:
    fake.add(oai.text_stream(PIECES))
    model, ledger, _ = _model(fake, tmp_path)
    driver.stream_collect(model, PROMPT)
    [row] = ledger.records()
    assert row.status == "ok"
    assert row.usage.input_tokens == oai.DEFAULT_USAGE.input_tokens
    assert row.error is None
