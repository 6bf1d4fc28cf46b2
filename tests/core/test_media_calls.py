"""Embedding and image calls through the Model facade, end to end against the loopback
fake provider, on both drivers: batching, order, usage, prices, ledger rows of their
kind, attribution, budgets (an image budget denies before the provider is called),
faults, and a partially answered call that still records what was paid for."""

from __future__ import annotations

import math
import warnings
from decimal import Decimal

import pytest

import tollway
from tests.conftest import Driver
from tests.fakes import replies_gemini as gem
from tests.fakes import replies_openai as oai
from tests.fakes.replies_media import (
    DIMENSIONS,
    ImageTokens,
    MediaResponder,
    gemini_embed_reply,
    hashed_vector,
    openai_embeddings_reply,
    openai_image_reply,
    png,
    tokens_of,
)
from tests.fakes.server import FakeProvider, Reply
from tollway import errors
from tollway.core.cost.budgets import Budgets
from tollway.core.cost.pricing import PriceBook, UnpricedModelWarning
from tollway.core.stores.open import open_ledger

KEY = "sk-test-media-key-0123456789"


def embedder(fake: FakeProvider, model: str = "openai/text-embedding-3-small",
             **kw: object) -> tollway.Model:
    kw.setdefault("ledger", False)
    return tollway.Model(model, api_key=KEY, api_base=fake.url, **kw)


def genai_cost(model: str, provider: str = "openai", **usage: int) -> int:
    """genai-prices' own Decimal calculation, as nano-USD."""
    from genai_prices import calc_price
    from genai_prices.types import Usage as GenaiUsage

    price = calc_price(GenaiUsage(**usage), model_ref=model, provider_id=provider)
    return int((price.total_price * 1_000_000_000).to_integral_value())


# --------------------------------------------------------------------------- embeddings


def test_embed_returns_vectors_in_input_order_with_usage_and_genai_prices_cost(
    fake: FakeProvider, driver: Driver
) -> None:
    texts = ["red apples", "green pears", "blue sky"]
    fake.add(openai_embeddings_reply(texts, reverse=True))  # listed out of order
    result = driver.embed(embedder(fake), texts, dimensions=DIMENSIONS)
    sent = fake.requests[0]
    assert sent.path == "/embeddings"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json == {"model": "text-embedding-3-small", "input": texts,
                         "dimensions": DIMENSIONS}
    assert result.vectors == [pytest.approx(hashed_vector(t)) for t in texts]
    assert result.dimensions == DIMENSIONS
    tokens = sum(tokens_of(t) for t in texts)
    assert result.usage.input_tokens == tokens and not result.usage_estimated
    assert result.cost_nanos == genai_cost("text-embedding-3-small", input_tokens=tokens)
    assert result.cost == Decimal(result.cost_nanos) / 10**9
    assert (result.provider, result.deployment) == ("openai", "openai/text-embedding-3-small")
    assert result.trace_id and result.latency > 0


def test_base64_embeddings_decode_to_the_same_floats(fake: FakeProvider, driver: Driver) -> None:
    fake.default = MediaResponder()
    model = embedder(fake)
    floats = driver.embed(model, ["one fish", "two fish"])
    packed = driver.embed(model, ["one fish", "two fish"], encoding_format="base64")
    assert fake.requests[1].json["encoding_format"] == "base64"
    assert packed.vectors == [pytest.approx(v, abs=1e-6) for v in floats.vectors]


def test_many_texts_are_batched_to_the_limit_in_order_and_usage_is_summed(
    fake: FakeProvider, driver: Driver
) -> None:
    fake.default = MediaResponder()
    texts = [f"document number {i}" for i in range(4500)]  # OpenAI takes 2,048 a request
    result = driver.embed(embedder(fake), texts)
    assert [len(r.json["input"]) for r in fake.requests] == [2048, 2048, 404]
    assert [r.json["input"][0] for r in fake.requests] == [texts[0], texts[2048], texts[4096]]
    assert len(result.vectors) == 4500
    assert result.vectors[4499] == pytest.approx(hashed_vector(texts[4499]))
    assert result.usage.input_tokens == sum(tokens_of(t) for t in texts)
    assert result.usage.requests == 3


def test_gemini_embeddings_send_task_type_and_price_the_estimate_when_unreported(
    fake: FakeProvider, driver: Driver
) -> None:
    fake.default = MediaResponder()
    model = tollway.Model("gemini/gemini-embedding-001", api_key=KEY, api_base=fake.url,
                          ledger=False)
    one = driver.embed(model, "where is the cat", input_type="query", dimensions=32)
    many = driver.embed(model, ["the cat sat", "on the mat"], input_type="document")
    single, batch = fake.requests
    assert single.path == "/models/gemini-embedding-001:embedContent"
    assert single.headers["x-goog-api-key"] == KEY
    assert single.json == {"content": {"parts": [{"text": "where is the cat"}]},
                           "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 32}
    assert batch.path == "/models/gemini-embedding-001:batchEmbedContents"
    assert [r["taskType"] for r in batch.json["requests"]] == ["RETRIEVAL_DOCUMENT"] * 2
    assert batch.json["requests"][0]["model"] == "models/gemini-embedding-001"
    assert one.dimensions == 32 and len(many.vectors) == 2
    # Gemini reports no tokens: priced on the estimate (4 chars a token), flagged.
    assert many.usage_estimated and many.usage.input_tokens == 3 + 3
    assert many.cost_nanos == genai_cost("gemini-embedding-001", "google", input_tokens=6)


def test_vertex_embeddings_use_predict_and_its_token_counts(fake: FakeProvider, driver: Driver) -> None:
    fake.default = MediaResponder()
    model = tollway.Model("vertex_ai/text-embedding-005", api_key="ya29.token",
                          api_base=fake.url, ledger=False)
    result = driver.embed(model, ["alpha beta", "gamma"], input_type="document")
    sent = fake.requests[0]
    assert sent.path == "/models/text-embedding-005:predict"
    assert sent.json["instances"] == [{"content": "alpha beta", "task_type": "RETRIEVAL_DOCUMENT"},
                                      {"content": "gamma", "task_type": "RETRIEVAL_DOCUMENT"}]
    assert result.usage.input_tokens == tokens_of("alpha beta") + tokens_of("gamma")
    assert not result.usage_estimated


def test_vertex_text_embeddings_are_priced_per_billable_character(
    fake: FakeProvider, driver: Driver
) -> None:
    # Vertex bills text-embedding-005 per character ($0.025 per 1M online); genai-prices
    # has no Vertex embedding prices, so the rate comes from tollway.yaml.
    ledger = open_ledger("memory")
    fake.default = MediaResponder()
    prices = PriceBook({"vertex_ai/text-embedding-005": {"input_characters": 0.025}})
    model = tollway.Model("vertex_ai/text-embedding-005", api_key="ya29.token",
                          api_base=fake.url, ledger=ledger, prices=prices)
    texts = ["alpha beta " * 400, "gamma " * 900]
    result = driver.embed(model, texts)
    chars = sum(len(t) for t in texts)  # the fake answers metadata.billableCharacterCount
    assert result.usage.units == {"input_characters": chars}
    assert not result.usage_estimated
    # 9,800 characters x $0.025/M = $0.000245 (25 nano-USD a character); the tokens
    # Vertex also reports are not billed again.
    assert result.cost_nanos == chars * 25 == 245_000
    [row] = ledger.records()  # type: ignore[attr-defined]
    assert row.kind == "embedding" and row.cost_nanos == 245_000


def test_embedding_rows_have_kind_embedding_and_the_callers_attribution(
    fake: FakeProvider, driver: Driver
) -> None:
    ledger = open_ledger("memory")
    fake.default = MediaResponder()
    model = embedder(fake, ledger=ledger, attribution={"project": "rag"})
    with tollway.attribute(user="alice", agent="retriever"):
        result = driver.embed(model, ["a b c"])
    [row] = ledger.records()
    assert (row.kind, row.status, row.user, row.agent, row.project) == (
        "embedding", "ok", "alice", "retriever", "rag")
    assert row.cost_nanos == result.cost_nanos and row.usage.input_tokens == tokens_of("a b c")
    assert row.trace_id == result.trace_id


def test_embedding_faults_are_typed_retried_and_recorded(fake: FakeProvider, driver: Driver) -> None:
    ledger = open_ledger("memory")
    fake.add(oai.error_reply(429, "slow down", retry_after=0),
             Reply(200, b"{not json"), oai.error_reply(500, "boom"))
    model = embedder(fake, ledger=ledger)
    with pytest.raises(errors.RateLimitError):
        driver.embed(model, "x")
    with pytest.raises(errors.ServerError, match="not JSON"):
        driver.embed(model, "x")
    with pytest.raises(errors.ServerError):
        driver.embed(model, "x")
    rows = ledger.records()
    assert [(r.kind, r.status) for r in rows] == [
        ("embedding", "RateLimitError"), ("embedding", "ServerError"), ("embedding", "ServerError")]
    assert all(KEY not in (r.error or "") for r in rows)


def test_a_batch_failing_after_paid_batches_settles_and_records_what_was_paid(
    fake: FakeProvider, driver: Driver
) -> None:
    ledger = open_ledger("memory")
    first = [f"t{i}" for i in range(2048)]
    fake.add(openai_embeddings_reply(first), oai.error_reply(500, "second batch died"))
    budgets = Budgets([{"scope": "all", "limit": 10, "period": "day"}])
    model = embedder(fake, ledger=ledger, guards=[budgets])
    with pytest.raises(errors.ServerError):
        driver.embed(model, [*first, "one more"])
    [row] = ledger.records()
    paid = sum(tokens_of(t) for t in first)
    assert row.status == "ServerError" and row.usage.input_tokens == paid
    expected = genai_cost("text-embedding-3-small", input_tokens=paid)
    assert row.cost_nanos == expected
    [status] = tollway.budget_status(budgets)
    assert status.spent == Decimal(expected) / 10**9 and status.reserved == 0


def test_bad_embedding_input_is_refused_before_any_request(fake: FakeProvider, driver: Driver) -> None:
    model = embedder(fake)
    for texts, kw, field in (([], {}, "texts"), ([1, 2], {}, "texts"),
                             ("x", {"dimensions": 0}, "dimensions"),
                             ("x", {"input_type": "passage"}, "input_type")):
        with pytest.raises(errors.InvalidRequestError) as caught:
            driver.embed(model, texts, **kw)
        assert caught.value.field == field
    assert fake.requests == []


def test_a_provider_without_embeddings_says_which_have_them(driver: Driver) -> None:
    model = tollway.Model("anthropic/claude-sonnet-4-5", api_key="sk-ant-x", ledger=False)
    with pytest.raises(errors.BadRequestError, match=r"no embeddings API.*openai"):
        driver.embed(model, "x")


def test_embedding_budget_reserves_the_token_estimate(fake: FakeProvider, driver: Driver) -> None:
    fake.default = MediaResponder()
    # 40 chars = 10 estimated tokens a text; a 25-token budget lets 2 texts through.
    budgets = Budgets([{"scope": "all", "limit": 25, "unit": "tokens", "period": "day"}])
    model = embedder(fake, guards=[budgets])
    with pytest.raises(errors.BudgetExceededError):
        driver.embed(model, ["x" * 40] * 3)
    assert fake.requests == []
    driver.embed(model, ["x" * 40] * 2)
    assert len(fake.requests) == 1


# --------------------------------------------------------------------------- images


def test_gpt_image_generation_prices_text_and_image_tokens_at_their_rates(
    fake: FakeProvider, driver: Driver
) -> None:
    tokens = ImageTokens(text_in=21, image_in=0, image_out=1056)
    fake.add(openai_image_reply(2, tokens=tokens, revised_prompt="a red square"))
    model = tollway.Model("openai/gpt-image-1.5", api_key=KEY, api_base=fake.url, ledger=False)
    img = driver.generate_image(model, "a red square", size="1024x1024", quality="medium", n=2)
    sent = fake.requests[0]
    assert sent.path == "/images/generations"
    assert sent.json == {"model": "gpt-image-1.5", "prompt": "a red square", "n": 2,
                         "size": "1024x1024", "quality": "medium"}
    assert len(img.images) == 2 and img.image.data == png()
    assert img.image.media_type == "image/png" and img.image.revised_prompt == "a red square"
    assert (img.size, img.quality) == ("1024x1024", "medium")
    u = img.usage
    assert (u.input_tokens, u.output_tokens, u.output_image_tokens) == (21, 2112, 2112)
    # gpt-image-1.5: text output $10/M but image output $32/M: billed at the image rate.
    assert img.cost_nanos == genai_cost("gpt-image-1.5", input_tokens=21, output_tokens=2112,
                                        output_image_tokens=2112)
    assert img.cost_nanos == 21 * 5_000 + 2112 * 32_000  # nano-USD a token: $5/M, $32/M


def test_image_edit_is_multipart_with_the_image_bytes_and_prices_image_input(
    fake: FakeProvider, driver: Driver, tmp_path: object
) -> None:
    fake.default = MediaResponder(image_tokens=ImageTokens(text_in=9, image_out=272))
    model = tollway.Model("openai/gpt-image-1", api_key=KEY, api_base=fake.url, ledger=False)
    source = png(4, 4, (0, 0, 255))
    img = driver.edit_image(model, source, "make it red", mask=png(4, 4, (0, 0, 0)), n=1)
    sent = fake.requests[0]
    assert sent.path == "/images/edits"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="prompt"\r\n\r\nmake it red' in sent.body
    assert b'name="image"; filename="image-0.png"' in sent.body and source in sent.body
    assert b'name="mask"' in sent.body
    u = img.usage
    assert (u.input_tokens, u.input_image_tokens, u.output_tokens) == (9 + 388, 388, 272)
    assert img.cost_nanos == genai_cost("gpt-image-1", input_tokens=397, input_image_tokens=388,
                                        output_tokens=272)


def test_dall_e_is_priced_per_image_by_size_and_quality_from_the_override(
    fake: FakeProvider, driver: Driver
) -> None:
    fake.default = MediaResponder()
    prices = PriceBook({"openai/dall-e-3": {"images": {
        "1024x1024": {"standard": 0.04, "hd": 0.08}, "1792x1024": {"standard": 0.08, "hd": 0.12}}}})
    ledger = open_ledger("memory")
    model = tollway.Model("openai/dall-e-3", api_key=KEY, api_base=fake.url, prices=prices,
                          ledger=ledger)
    hd = driver.generate_image(model, "a lighthouse", size="1792x1024", quality="hd")
    default = driver.generate_image(model, "a lighthouse")
    assert "quality" not in fake.requests[1].json and "size" not in fake.requests[1].json
    assert hd.image.url and hd.image.data is None
    assert hd.usage.units == {"image:1792x1024:hd": 1} and hd.cost == Decimal("0.12")
    assert default.usage.units == {"image:1024x1024:standard": 1}
    assert default.cost == Decimal("0.04")
    assert [(r.kind, r.cost_nanos) for r in ledger.records()] == [
        ("image", 120_000_000), ("image", 40_000_000)]


def test_an_image_size_the_price_does_not_list_is_cost_unknown_never_zero(
    fake: FakeProvider, driver: Driver
) -> None:
    fake.default = MediaResponder()
    prices = PriceBook({"openai/dall-e-2": {"images": {"1024x1024": 0.02}}})
    model = tollway.Model("openai/dall-e-2", api_key=KEY, api_base=fake.url, prices=prices,
                          ledger=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img = driver.generate_image(model, "x", size="256x256")
    assert img.cost_nanos is None and img.cost is None
    assert any(issubclass(w.category, UnpricedModelWarning) for w in caught)
    assert driver.generate_image(model, "x", size="1024x1024").cost == Decimal("0.02")


def test_an_image_budget_denies_before_the_provider_is_called(
    fake: FakeProvider, driver: Driver
) -> None:
    fake.default = MediaResponder()
    ledger = open_ledger("memory")
    prices = PriceBook({"openai/dall-e-3": {"images": {"1024x1024": {"standard": 0.04,
                                                                     "hd": 0.08}}}})
    budgets = Budgets([{"scope": {"user": "each"}, "limit": 0.20, "period": "day"}],
                      prices=prices)
    model = tollway.Model("openai/dall-e-3", api_key=KEY, api_base=fake.url, prices=prices,
                          guards=[budgets], ledger=ledger)
    with tollway.attribute(user="bob"):
        # No quality given: the reservation is n x the dearest (hd, $0.08): 3 x 0.08 > 0.20.
        with pytest.raises(errors.BudgetExceededError) as denied:
            driver.generate_image(model, "three cats", n=3)
        assert fake.requests == []
        img = driver.generate_image(model, "two cats", n=2, quality="standard")
    assert denied.value.requested == pytest.approx(0.24)
    assert img.cost == Decimal("0.08")
    [status] = tollway.budget_status(budgets)
    assert status.spent == Decimal("0.08") and status.reserved == 0
    assert [(r.kind, r.status) for r in ledger.records()] == [
        ("image", "BudgetExceededError"), ("image", "ok")]


def test_gpt_image_budget_bounds_by_quality_tokens(fake: FakeProvider, driver: Driver) -> None:
    fake.default = MediaResponder(image_tokens=ImageTokens(text_in=5, image_out=400))
    # gpt-image-1 output $40/M: a low-quality image bounds at 408 tokens ($0.0163), a
    # high one at 6,240 ($0.25); a $0.05 budget admits low and refuses high.
    budgets = Budgets([{"scope": "all", "limit": 0.05, "period": "day"}])
    model = tollway.Model("openai/gpt-image-1", api_key=KEY, api_base=fake.url,
                          guards=[budgets], ledger=False)
    with pytest.raises(errors.BudgetExceededError):
        driver.generate_image(model, "x", quality="high")
    assert fake.requests == []
    img = driver.generate_image(model, "x", quality="low")
    assert img.usage.output_tokens == 400


def test_gemini_image_model_returns_inline_images_and_prices_image_tokens(
    fake: FakeProvider, driver: Driver
) -> None:
    fake.default = MediaResponder()
    ledger = open_ledger("memory")
    model = tollway.Model("gemini/gemini-2.5-flash-image", api_key=KEY, api_base=fake.url,
                          ledger=ledger)
    img = driver.generate_image(model, "a sunset", size="16:9", n=2)
    assert len(fake.requests) == 2  # one image per generateContent request
    sent = fake.requests[0]
    assert sent.path == "/models/gemini-2.5-flash-image:generateContent"
    assert sent.json["generationConfig"] == {"responseModalities": ["IMAGE"],
                                             "imageConfig": {"aspectRatio": "16:9"}}
    assert [i.data for i in img.images] == [png(), png()]
    assert img.text == "Here is your image.Here is your image."
    text_out = tokens_of("Here is your image.")
    u = img.usage
    assert (u.input_tokens, u.output_image_tokens) == (24, 2 * 1290)
    assert u.output_tokens == 2 * (1290 + text_out)
    assert img.cost_nanos == genai_cost(
        "gemini-2.5-flash-image", "google", input_tokens=24, output_tokens=u.output_tokens,
        output_image_tokens=2580)
    [row] = ledger.records()
    assert row.kind == "image" and row.usage.requests == 2


def test_imagen_predict_is_priced_per_image(fake: FakeProvider, driver: Driver) -> None:
    fake.default = MediaResponder()
    prices = PriceBook({"gemini/imagen-4.0-generate-001": {"images": {"*": 0.04}}})
    model = tollway.Model("gemini/imagen-4.0-generate-001", api_key=KEY, api_base=fake.url,
                          prices=prices, ledger=False)
    img = driver.generate_image(model, "a fox", n=3, size="4:3", output_format="jpeg")
    sent = fake.requests[0]
    assert sent.path == "/models/imagen-4.0-generate-001:predict"
    assert sent.json == {"instances": [{"prompt": "a fox"}], "parameters": {
        "sampleCount": 3, "aspectRatio": "4:3", "outputOptions": {"mimeType": "image/jpeg"}}}
    assert len(img.images) == 3 and img.cost == Decimal("0.12")


def test_image_faults_and_bad_input(fake: FakeProvider, driver: Driver) -> None:
    fake.add(oai.error_reply(400, "Unknown parameter: 'quality'.", code="unknown_parameter"),
             Reply(200, {"created": 1}))
    model = tollway.Model("openai/dall-e-2", api_key=KEY, api_base=fake.url, ledger=False)
    with pytest.raises(errors.BadRequestError, match="Unknown parameter"):
        driver.generate_image(model, "x", quality="standard")
    with pytest.raises(errors.ServerError, match="no 'data' list"):
        driver.generate_image(model, "x")
    for prompt, kw, field in (("", {}, "prompt"), ("x", {"n": 0}, "n"),
                              ("x", {"size": 1024}, "size")):
        with pytest.raises(errors.InvalidRequestError) as caught:
            driver.generate_image(model, prompt, **kw)
        assert caught.value.field == field
    gemini = tollway.Model("gemini/gemini-2.5-flash-image", api_key=KEY, api_base=fake.url,
                           ledger=False)
    with pytest.raises(errors.InvalidRequestError, match="take no quality"):
        driver.generate_image(gemini, "x", quality="hd")
    assert len(fake.requests) == 2


def test_gemini_image_errors_are_typed(fake: FakeProvider, driver: Driver) -> None:
    fake.add(gem.error_reply(429, "quota", retry_after=3))
    model = tollway.Model("gemini/gemini-2.5-flash-image", api_key=KEY, api_base=fake.url,
                          ledger=False)
    with pytest.raises(errors.RateLimitError) as caught:
        driver.generate_image(model, "x")
    assert caught.value.retry_after == 3


def test_embedding_vectors_rank_the_matching_document_first(fake: FakeProvider) -> None:
    """The fake's vectors are meaningful (hashed words): what downstream retriever tests
    rely on."""
    fake.default = MediaResponder()
    docs = ["the cat sat on the mat", "stock markets fell today", "rain is expected tomorrow"]
    # "sit" and "sat" differ: the match is on "cat" alone, as with any bag of words.
    model = embedder(fake)
    doc_vectors = model.embed(docs, input_type="document").vectors
    query = model.embed("where did the cat sit", input_type="query").vectors[0]
    scores = [sum(a * b for a, b in zip(query, d, strict=True)) for d in doc_vectors]
    assert max(range(3), key=scores.__getitem__) == 0
    assert all(math.isclose(sum(x * x for x in v), 1.0) for v in doc_vectors)


def test_gemini_single_text_answers_parse_from_embed_content(fake: FakeProvider) -> None:
    fake.add(gemini_embed_reply(["solo"], batch=False))
    model = tollway.Model("gemini/gemini-embedding-001", api_key=KEY, api_base=fake.url,
                          ledger=False)
    assert model.embed("solo").vectors == [pytest.approx(hashed_vector("solo"))]
