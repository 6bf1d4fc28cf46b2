"""The provider table: each row reaches the right URL with the right auth, over real HTTP."""

from __future__ import annotations

import pytest

import tollway
from tests.fakes import replies_anthropic, replies_gemini, replies_openai
from tests.fakes.server import FakeProvider
from tollway import errors
from tollway.core.providers import PROVIDERS, resolve_deployment

KEY = "key-abcdef123456"


def _call(target: str, fake: FakeProvider, **kw: object) -> tollway.Response:
    model = tollway.Model(target, api_base=kw.pop("api_base", fake.url), ledger=False,
                          config=False, **kw)
    return model.complete("hi")


@pytest.mark.parametrize(
    "provider", ["openai", "groq", "mistral", "deepseek", "openrouter", "together", "xai",
                 "litellm_proxy", "openai_compatible", "vllm"],
)
def test_openai_compatible_rows_send_bearer_auth_to_chat_completions(
    provider: str, fake: FakeProvider
) -> None:
    fake.add(replies_openai.text_reply("ok"))
    response = _call(f"{provider}/some-model", fake, api_key=KEY)
    sent = fake.requests[0]
    assert sent.path == "/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["model"] == "some-model"
    assert response.provider == provider and response.text == "ok"


def test_compatible_providers_send_max_tokens_openai_sends_max_completion_tokens(
    fake: FakeProvider,
) -> None:
    fake.add(replies_openai.text_reply("a"), replies_openai.text_reply("b"))
    tollway.Model("groq/m", api_key=KEY, api_base=fake.url, ledger=False,
                  config=False).complete("hi", max_tokens=7)
    tollway.Model("openai/m", api_key=KEY, api_base=fake.url, ledger=False,
                  config=False).complete("hi", max_tokens=7)
    assert fake.requests[0].json.get("max_tokens") == 7
    assert fake.requests[1].json.get("max_completion_tokens") == 7


def test_ollama_needs_no_key_and_sends_no_auth(fake: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_API_BASE", raising=False)
    fake.add(replies_openai.text_reply("local"))
    _call("ollama/llama3.2", fake)
    assert "authorization" not in fake.requests[0].headers


def test_azure_uses_the_deployment_path_api_version_and_api_key_header(fake: FakeProvider) -> None:
    fake.add(replies_openai.text_reply("azure"))
    _call("azure/my-gpt4o", fake, api_key=KEY, api_version="2025-01-01-preview")
    sent = fake.requests[0]
    assert sent.path == "/openai/deployments/my-gpt4o/chat/completions?api-version=2025-01-01-preview"
    assert sent.headers["api-key"] == KEY
    assert "authorization" not in sent.headers


def test_azure_is_priced_by_the_model_it_reports_not_the_deployment_name(
    fake: FakeProvider,
) -> None:
    fake.add(replies_openai.text_reply("azure", model="gpt-4o-mini-2024-07-18"))
    response = _call("azure/my-team-deployment", fake, api_key=KEY)
    openai_price = tollway.Model("openai/gpt-4o-mini", api_key=KEY, ledger=False, config=False
                                 ).prices.price("openai", "gpt-4o-mini", response.usage)
    assert response.cost_nanos is not None and response.cost_nanos == openai_price


def test_anthropic_sends_x_api_key_and_version(fake: FakeProvider) -> None:
    fake.add(replies_anthropic.text_reply("claude"))
    response = _call("anthropic/claude-sonnet-4-5", fake, api_key=KEY)
    sent = fake.requests[0]
    assert sent.path == "/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"]
    assert sent.json["max_tokens"] > 0  # Anthropic requires it; tollway fills a default
    assert response.text == "claude"


def test_gemini_sends_the_key_header_and_model_path(fake: FakeProvider) -> None:
    fake.add(replies_gemini.text_reply("gemini"))
    _call("gemini/gemini-2.5-flash", fake, api_key=KEY)
    sent = fake.requests[0]
    assert sent.path == "/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY


def test_vertex_takes_a_token_from_a_callable_each_call(fake: FakeProvider) -> None:
    tokens = iter(["token-one-123456", "token-two-123456"])
    fake.add(replies_gemini.text_reply("a"), replies_gemini.text_reply("b"))
    model = tollway.Model("vertex_ai/gemini-2.5-flash", api_key=lambda: next(tokens),
                          api_base=fake.url, ledger=False, config=False)
    model.complete("hi")
    model.complete("hi")
    assert [r.headers["authorization"] for r in fake.requests] == [
        "Bearer token-one-123456", "Bearer token-two-123456",
    ]


def test_vertex_base_url_comes_from_project_and_location(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERTEXAI_PROJECT", "proj-1")
    monkeypatch.setenv("VERTEXAI_LOCATION", "europe-west4")
    dep = resolve_deployment("vertex_ai/gemini-2.5-pro", api_key="t-123456789")
    assert dep.url("/models/x:generateContent") == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj-1/locations/"
        "europe-west4/publishers/google/models/x:generateContent"
    )


def test_providers_without_a_default_base_url_say_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VLLM_API_BASE", raising=False)
    with pytest.raises(errors.ConfigError, match="api_base"):
        tollway.Model("vllm/llama", ledger=False, config=False)


@pytest.mark.parametrize("name", sorted(n for n, s in PROVIDERS.items() if s.key_required))
def test_every_keyed_provider_fails_before_sending_when_its_key_is_missing(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for env in PROVIDERS[name].key_env:
        monkeypatch.delenv(env, raising=False)
    with pytest.raises(errors.AuthenticationError) as info:
        resolve_deployment(f"{name}/m", api_base="http://127.0.0.1:9")
    assert PROVIDERS[name].key_env[0] in str(info.value)


def test_the_key_never_appears_in_a_deployment_repr() -> None:
    dep = resolve_deployment("openai/gpt-4o-mini", api_key="sk-very-secret-value-1234")
    assert "sk-very-secret" not in repr(dep)
