"""``/v1/embeddings`` and ``/v1/images/generations``, driven by the real openai SDK (sync
and async) through a real uvicorn gateway to fake OpenAI and Gemini providers: virtual
keys, model permissions, budgets and ledger rows apply as for chat."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest

from tests.fakes import replies_openai as oai
from tests.fakes.replies_media import MediaResponder, hashed_vector, png, tokens_of
from tests.fakes.server import FakeProvider
from tests.gateway.clients import DRIVERS, openai_call
from tests.gateway.conftest import UPSTREAM_KEY

KEY_REF = "env:TOLLWAY_TEST_UPSTREAM_KEY"


def media_models(base: str) -> dict[str, dict[str, str]]:
    return {
        "embed": {"model": "openai/text-embedding-3-small", "api_base": base, "api_key": KEY_REF},
        "gem-embed": {"model": "gemini/gemini-embedding-001", "api_base": base,
                      "api_key": KEY_REF},
        "draw": {"model": "openai/gpt-image-1", "api_base": base, "api_key": KEY_REF},
        "dalle": {"model": "openai/dall-e-3", "api_base": base, "api_key": KEY_REF,
                  "price": {"images": {"1024x1024": {"standard": 0.04, "hd": 0.08}}}},
        "fast": {"model": "openai/gpt-4o-mini", "api_base": base, "api_key": KEY_REF},
    }


@pytest.mark.parametrize("driver", DRIVERS)
def test_embeddings_through_the_gateway_in_the_sdks_base64_form_are_recorded_for_the_key(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    fake.default = MediaResponder()
    gw = gateway_server(models=media_models(fake.url))
    secret, key = gw.create_key(org="acme", user="ann", models=["embed", "gem-embed"])
    texts = ["the cat sat", "a dog ran"]

    # The SDK asks for base64 and decodes it; the upstream got floats or base64 as asked.
    reply = openai_call(driver, gw.url, secret, "embeddings.create", model="embed", input=texts)
    assert [d.embedding for d in reply.data] == [pytest.approx(hashed_vector(t), abs=1e-6)
                                                 for t in texts]
    assert reply.usage.prompt_tokens == sum(tokens_of(t) for t in texts)
    upstream = fake.requests[-1]
    assert upstream.path == "/embeddings"
    assert upstream.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert upstream.json["model"] == "text-embedding-3-small"

    # An OpenAI client reaches a Gemini embedding model through the same endpoint.
    gem = openai_call(driver, gw.url, secret, "embeddings.create", model="gem-embed",
                      input="the cat sat", encoding_format="float")
    assert gem.data[0].embedding == pytest.approx(hashed_vector("the cat sat"))
    assert fake.requests[-1].path == "/models/gemini-embedding-001:embedContent"

    rows = gw.ledger_rows()
    assert [(r["kind"], r["key"], r["org"], r["user"], r["alias"]) for r in rows] == [
        ("embedding", key.id, "acme", "ann", "embed"),
        ("embedding", key.id, "acme", "ann", "gem-embed")]
    assert all(r["cost_nanos"] > 0 for r in rows)


@pytest.mark.parametrize("driver", DRIVERS)
def test_image_generation_through_the_gateway_returns_b64_json_and_usage(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    fake.default = MediaResponder()
    gw = gateway_server(models=media_models(fake.url))
    secret, _ = gw.create_key(project="art", models=["draw", "dalle"])

    img = openai_call(driver, gw.url, secret, "images.generate", model="draw",
                      prompt="a red square", size="1024x1024", quality="medium", n=2)
    assert [base64.b64decode(d.b64_json) for d in img.data] == [png(), png()]
    assert img.usage.output_tokens == 2 * 1056
    assert fake.requests[-1].json["n"] == 2

    dalle = openai_call(driver, gw.url, secret, "images.generate", model="dalle",
                        prompt="a lighthouse", quality="hd")
    assert dalle.data[0].url.startswith("https://")
    rows = gw.ledger_rows()
    assert [(r["kind"], r["project"], r["status"]) for r in rows] == [
        ("image", "art", "ok"), ("image", "art", "ok")]
    assert rows[1]["cost_nanos"] == 80_000_000  # the alias's per-image price, hd


def test_media_endpoints_enforce_the_keys_models_and_budget(
    gateway_server, fake: FakeProvider
) -> None:
    fake.default = MediaResponder()
    gw = gateway_server(models=media_models(fake.url))
    only_chat, _ = gw.create_key(models=["fast"])
    with pytest.raises(openai.PermissionDeniedError, match="may not use model 'embed'"):
        openai_call("sync", gw.url, only_chat, "embeddings.create", model="embed", input="x")
    poor, _ = gw.create_key(models=["dalle"], budgets=["0.05 usd/day"])
    # n=2 reserves 2 x the dearest image ($0.08): denied before the upstream is called.
    before = len(fake.requests)
    with pytest.raises(openai.RateLimitError):
        openai_call("sync", gw.url, poor, "images.generate", model="dalle", prompt="x", n=2)
    assert len(fake.requests) == before
    ok = openai_call("sync", gw.url, poor, "images.generate", model="dalle", prompt="x",
                     quality="standard")
    assert ok.data[0].url


def test_bad_media_requests_get_openai_errors(gateway_server, fake: FakeProvider) -> None:
    fake.default = lambda received: oai.error_reply(500, "upstream broke")  # every retry
    gw = gateway_server(models=media_models(fake.url))
    secret, _ = gw.create_key(models=["embed", "draw"])
    headers = {"authorization": f"Bearer {secret}"}
    cases = [
        ("/v1/embeddings", {"model": "embed", "input": [[1, 2, 3]]}, 400, "token arrays"),
        ("/v1/embeddings", {"model": "embed", "input": "x", "encoding_format": "int8"}, 400,
         "encoding_format"),
        ("/v1/embeddings", {"input": "x"}, 400, "needs 'model'"),
        ("/v1/images/generations", {"model": "draw", "prompt": ""}, 400, "prompt"),
        ("/v1/embeddings", {"model": "embed", "input": "x"}, 502, "upstream broke"),
    ]
    for path, body, status, text in cases:
        answer = httpx.post(gw.url + path, json=body, headers=headers)
        assert answer.status_code == status, (path, body, answer.text)
        error = answer.json()["error"]
        assert text in error["message"] and secret not in answer.text


@pytest.mark.parametrize("driver", DRIVERS)
def test_image_edits_through_the_gateway_send_the_image_upstream_and_are_recorded(
    driver: str, gateway_server, fake: FakeProvider
) -> None:
    fake.default = MediaResponder()
    gw = gateway_server(models=media_models(fake.url))
    secret, key = gw.create_key(project="art", models=["draw"])
    source = png(rgb=(10, 200, 10))

    img = openai_call(driver, gw.url, secret, "images.edit", model="draw",
                      image=("in.png", source, "image/png"), mask=("mask.png", png(), "image/png"),
                      prompt="make it blue", n=2, size="1024x1024")

    assert [base64.b64decode(d.b64_json) for d in img.data] == [png(), png()]
    upstream = fake.requests[-1]
    assert upstream.path.endswith("/images/edits")
    assert upstream.headers["content-type"].startswith("multipart/form-data")
    assert source in upstream.body and b"make it blue" in upstream.body
    assert upstream.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    [row] = gw.ledger_rows()
    assert (row["kind"], row["key"], row["project"], row["status"]) == ("image", key.id, "art", "ok")
    assert row["cost_nanos"] > 0


def test_image_edits_without_an_image_or_as_json_are_a_400(gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server(models=media_models(fake.url))
    secret, _ = gw.create_key(models=["draw"])
    headers = {"authorization": f"Bearer {secret}"}
    as_json = httpx.post(f"{gw.url}/v1/images/edits", json={"model": "draw", "prompt": "x"},
                         headers=headers)
    assert as_json.status_code == 400 and "multipart/form-data" in as_json.json()["error"]["message"]
    no_image = httpx.post(f"{gw.url}/v1/images/edits", data={"model": "draw", "prompt": "x"},
                          files={"note": ("a.txt", b"hi", "text/plain")}, headers=headers)
    assert no_image.status_code == 400 and "'image'" in no_image.json()["error"]["message"]
    assert fake.requests == []
