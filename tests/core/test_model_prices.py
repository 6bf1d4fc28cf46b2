"""A call's cost through the Model, sync and async, streamed and not: the service tier
the provider reports (else the one the request asked for) and the modality token
details it reports are priced as genai-prices computes them; budgets reserve at the
requested tier's rates.
"""

from __future__ import annotations

import pytest

import tollway
from tests.conftest import Driver
from tests.core.cost.genai_reference import genai_nanos
from tests.fakes import replies_gemini as gem
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tollway import errors
from tollway.core.types import Usage

KEY = "sk-test-secret-key-0123456789"
USAGE = Usage(input_tokens=4_000, output_tokens=600, cache_read_tokens=1_000, reasoning_tokens=200)


def openai(fake: FakeProvider, model: str = "gpt-5", **kw: object) -> tollway.Model:
    kw.setdefault("ledger", False)
    return tollway.Model(f"openai/{model}", api_key=KEY, api_base=fake.url, **kw)


def call(driver: Driver, model: tollway.Model, stream: bool, **kw: object) -> tollway.Response:
    if stream:
        response = driver.stream_collect(model, "hi", **kw).response
        assert response is not None
        return response
    return driver.complete(model, "hi", **kw)


def tiered(usage: Usage, tier: str | None) -> Usage:
    return Usage(usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
                 reasoning_tokens=usage.reasoning_tokens, service_tier=tier)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("tier", ["priority", "flex"])
def test_the_tier_openai_reports_is_the_tier_priced(
    fake: FakeProvider, driver: Driver, stream: bool, tier: str
) -> None:
    fake.add(oai.text_stream(["ok"], usage=USAGE, service_tier=tier) if stream
             else oai.text_reply("ok", usage=USAGE, service_tier=tier))
    response = call(driver, openai(fake), stream, extra={"service_tier": tier})
    assert fake.requests[0].json["service_tier"] == tier
    assert response.usage.service_tier == tier
    expected = genai_nanos("openai", "gpt-5", tiered(USAGE, tier))
    assert response.cost_nanos == expected
    assert expected != genai_nanos("openai", "gpt-5", tiered(USAGE, None))


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_openai_serving_a_priority_request_at_default_is_billed_at_default(
    fake: FakeProvider, driver: Driver, stream: bool
) -> None:
    """The response's tier wins over the request's: priority asked, default served."""
    fake.add(oai.text_stream(["ok"], usage=USAGE) if stream else oai.text_reply("ok", usage=USAGE))
    response = call(driver, openai(fake), stream, extra={"service_tier": "priority"})
    assert response.usage.service_tier is None
    assert response.cost_nanos == genai_nanos("openai", "gpt-5", tiered(USAGE, None))


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_without_a_tier_in_the_response_the_requested_tier_is_priced(
    fake: FakeProvider, driver: Driver, stream: bool
) -> None:
    fake.add(oai.text_stream(["ok"], usage=USAGE, service_tier=None) if stream
             else oai.text_reply("ok", usage=USAGE, service_tier=None))
    response = call(driver, openai(fake), stream, extra={"service_tier": "flex"})
    assert response.usage.service_tier == "flex"
    assert response.cost_nanos == genai_nanos("openai", "gpt-5", tiered(USAGE, "flex"))


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_openai_audio_tokens_are_priced_at_the_audio_rates(
    fake: FakeProvider, driver: Driver, stream: bool
) -> None:
    usage = Usage(input_tokens=3_000, output_tokens=800, input_audio_tokens=2_400,
                  output_audio_tokens=500)
    fake.add(oai.text_stream(["ok"], usage=usage) if stream else oai.text_reply("ok", usage=usage))
    response = call(driver, openai(fake, "gpt-audio"), stream)
    assert (response.usage.input_audio_tokens, response.usage.output_audio_tokens) == (2_400, 500)
    assert response.cost_nanos == genai_nanos("openai", "gpt-audio", usage)
    text = genai_nanos("openai", "gpt-audio", Usage(input_tokens=3_000, output_tokens=800))
    assert response.cost_nanos > text


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_gemini_audio_input_is_priced_at_the_audio_rate(
    fake: FakeProvider, driver: Driver, stream: bool
) -> None:
    """2.5 Flash: $1.00/M audio input, $0.10/M cached audio, against $0.30 / $0.03."""
    usage = Usage(input_tokens=50_000, output_tokens=900, cache_read_tokens=20_000,
                  input_audio_tokens=30_000, cache_audio_read_tokens=12_000)
    fake.add(gem.text_stream(["ok", "!"], usage=usage, model="gemini-2.5-flash") if stream
             else gem.text_reply("ok!", usage=usage, model="gemini-2.5-flash"))
    model = tollway.Model("gemini/gemini-2.5-flash", api_key=KEY, api_base=fake.url, ledger=False)
    response = call(driver, model, stream)
    got = response.usage
    assert (got.input_audio_tokens, got.cache_audio_read_tokens) == (30_000, 12_000)
    assert response.cost_nanos == genai_nanos("gemini", "gemini-2.5-flash", usage)
    as_text = Usage(input_tokens=50_000, output_tokens=900, cache_read_tokens=20_000)
    assert response.cost_nanos > genai_nanos("gemini", "gemini-2.5-flash", as_text)


def test_a_budget_reserves_at_the_requested_tiers_rates(fake: FakeProvider, driver: Driver) -> None:
    """gpt-5 priority costs twice the standard rates: a budget that affords one standard
    call's bound (max_tokens 1,000: ~$0.010) but not a priority one (~$0.020) lets the
    first through and stops the second before the provider."""
    fake.default = oai.text_reply("ok", usage=Usage(input_tokens=10, output_tokens=5))
    budget = tollway.Budgets([{"scope": {"org": "acme"}, "limit": 0.015, "period": "day"}])
    model = openai(fake, guards=[budget], attribution={"org": "acme"})
    driver.complete(model, "hi", max_tokens=1_000)
    with pytest.raises(errors.BudgetExceededError):
        driver.complete(model, "hi", max_tokens=1_000, extra={"service_tier": "priority"})
    assert len(fake.requests) == 1
    driver.complete(model, "hi", max_tokens=1_000)  # the same call at standard still fits
    assert len(fake.requests) == 2
