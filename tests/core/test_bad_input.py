"""Bad input is a typed tollway error that names the field and says what to fix, raised
before any budget or network step (the fake server must see no request), on both drivers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

import tollway
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tollway import errors
from tollway.core.cost.budgets import Budgets

CASES: list[tuple[str, Any, dict[str, Any], str]] = [
    ("an int prompt", 123, {}, "messages: expected a prompt string"),
    ("no prompt", None, {}, "messages: expected a prompt string"),
    ("an empty message list", [], {}, "messages: the list is empty"),
    ("max_tokens as text", "hi", {"max_tokens": "ten"}, "max_tokens: expected a whole number"),
    ("max_tokens zero", "hi", {"max_tokens": 0}, "max_tokens: must be at least 1"),
    ("temperature as text", "hi", {"temperature": "hot"}, "temperature: expected a number"),
    ("stop as a number", "hi", {"stop": 5}, "stop: expected a string or a list of strings"),
    ("an unknown reasoning key", "hi", {"reasoning": {"bogus": 1}},
     "reasoning: unknown key(s) 'bogus'; expected effort, budget_tokens, include_thoughts"),
    ("reasoning as a number", "hi", {"reasoning": 3}, "reasoning: expected an effort string"),
    ("history tool arguments of 123",
     [{"role": "user", "content": "hi"},
      {"role": "assistant", "content": None,
       "tool_calls": [{"id": "c1", "type": "function",
                       "function": {"name": "f", "arguments": 123}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "x"}],
     {}, "arguments of 'f' must be a JSON string or an object; got int"),
]


@pytest.mark.parametrize("driver", ["sync", "async"])
@pytest.mark.parametrize(("case", "messages", "params", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_is_a_typed_error_before_any_budget_or_network_step(
    fake: FakeProvider, driver: str, case: str, messages: Any, params: dict[str, Any],
    expected: str,
) -> None:
    fake.default = oai.text_reply("should not be reached")
    budget = Budgets([{"scope": {"org": "acme"}, "limit": 5, "period": "day"}])
    model = tollway.Model("openai/gpt-4o-mini", api_key="k" * 20, api_base=fake.url,
                          config=False, ledger=False, guards=[budget],
                          attribution={"org": "acme"})
    with pytest.raises(errors.BadRequestError) as info:
        if driver == "sync":
            model.complete(messages, **params)
        else:
            asyncio.run(model.acomplete(messages, **params))
    assert expected in str(info.value)
    assert fake.requests == []
    assert all(row.reserved == 0 and row.spent == 0 for row in budget.status())


class Weather(BaseModel):
    city: str
    temperature_c: float


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_parsed_on_invalid_output_is_a_typed_error_carrying_the_raw_text(
    fake: FakeProvider, driver: str
) -> None:
    fake.add(oai.text_reply('{"city": "Oslo"}'))
    model = tollway.Model("openai/gpt-4o-mini", api_key="k" * 20, api_base=fake.url,
                          config=False, ledger=False)
    if driver == "sync":
        response = model.complete("Weather?", response_format=Weather)
    else:
        response = asyncio.run(model.acomplete("Weather?", response_format=Weather))
    with pytest.raises(errors.OutputValidationError) as info:
        response.parsed  # noqa: B018
    assert info.value.raw == '{"city": "Oslo"}'
    assert "temperature_c" in str(info.value)
