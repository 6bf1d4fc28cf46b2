"""Every error status the gateway answers, in the client's dialect: raw HTTP for the
shapes and headers, the openai SDK (sync and async) for the exception a client catches."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import openai
import pytest

from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider, Reply
from tests.gateway.clients import DRIVERS, openai_call
from tests.gateway.conftest import UPSTREAM_KEY

CHAT = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def post(url: str, path: str, body: object = CHAT, key: str | None = None, **kw: object) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(url + path, json=body, headers=headers, timeout=10, **kw)  # type: ignore[arg-type]


def openai_error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_missing_unknown_and_malformed_keys_are_401_without_echoing_the_key(gateway_server) -> None:
    gw = gateway_server()
    missing = post(gw.url, "/v1/chat/completions")
    assert missing.status_code == 401
    assert openai_error(missing)["code"] == "missing_api_key"
    bogus = "sk-tw-not-a-real-key-0123456789abcdefghijklmnopqr"
    unknown = post(gw.url, "/v1/chat/completions", key=bogus)
    assert unknown.status_code == 401
    assert openai_error(unknown)["code"] == "invalid_api_key"
    assert bogus not in unknown.text


@pytest.mark.parametrize("driver", DRIVERS)
def test_revoked_key_is_refused_within_a_second(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, key = gw.create_key()
    fake.default = oai.text_reply("ok")
    openai_call(driver, gw.url, secret, "chat.completions.create", **CHAT)  # cached now
    gw.gateway.keys.store.revoke(key.id)
    revoked_at = time.monotonic()
    while True:
        try:
            openai_call(driver, gw.url, secret, "chat.completions.create", **CHAT)
        except openai.AuthenticationError as exc:
            assert exc.body["code"] == "revoked_api_key"
            break
        assert time.monotonic() - revoked_at < 1.0, "revocation took more than a second"
    assert time.monotonic() - revoked_at < 1.0


def test_expired_key_is_401_and_says_when_it_expired(gateway_server) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key(expires_at=time.time() - 5)
    response = post(gw.url, "/v1/chat/completions", key=secret)
    assert response.status_code == 401
    error = openai_error(response)
    assert error["code"] == "expired_api_key"
    assert "expired at" in str(error["message"])


@pytest.mark.parametrize("driver", DRIVERS)
def test_model_outside_the_key_is_403_and_never_reaches_the_provider(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key(models=["claude"])
    with pytest.raises(openai.PermissionDeniedError) as caught:
        openai_call(driver, gw.url, secret, "chat.completions.create", **CHAT)
    assert caught.value.body["code"] == "model_not_allowed"
    assert "claude" in caught.value.message
    assert fake.requests == []


@pytest.mark.parametrize("driver", DRIVERS)
def test_unknown_model_is_404(driver: str, gateway_server) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key(models=["*"])
    with pytest.raises(openai.NotFoundError) as caught:
        openai_call(driver, gw.url, secret, "chat.completions.create", model="nope",
                    messages=[{"role": "user", "content": "x"}])
    assert caught.value.body["code"] == "model_not_found"


@pytest.mark.parametrize("driver", DRIVERS)
def test_budget_exhausted_is_429_with_the_reset_time(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, key = gw.create_key(budgets=["2 requests/day"])
    fake.default = oai.text_reply("ok")
    for _ in range(2):
        openai_call(driver, gw.url, secret, "chat.completions.create", **CHAT)
    with pytest.raises(openai.RateLimitError) as caught:
        openai_call(driver, gw.url, secret, "chat.completions.create", **CHAT)
    headers = caught.value.response.headers
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC).timestamp() + 86400
    assert abs(int(headers["retry-after"]) - (midnight - now.timestamp())) <= 2
    assert datetime.fromisoformat(headers["x-tollway-reset"]).timestamp() == midnight
    assert caught.value.body["code"] == "budget_exceeded"
    assert len(fake.requests) == 2
    statuses = [row["status"] for row in gw.ledger_rows()]
    assert statuses == ["ok", "ok", "BudgetExceededError"]
    assert {row["key"] for row in gw.ledger_rows()} == {key.id}


@pytest.mark.parametrize("driver", DRIVERS)
def test_rate_limit_is_429_with_retry_after_within_the_minute(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key(rpm=1)
    fake.default = oai.text_reply("ok")
    openai_call(driver, gw.url, secret, "chat.completions.create", **CHAT)
    with pytest.raises(openai.RateLimitError) as caught:
        openai_call(driver, gw.url, secret, "chat.completions.create", **CHAT)
    assert caught.value.body["code"] == "rate_limit_exceeded"
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
    assert len(fake.requests) == 1


def test_outside_allowed_hours_is_429_with_the_opening_time(gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server()
    closed_day = _DAYS[(datetime.now(UTC).weekday() + 3) % 7]
    secret, _ = gw.create_key(hours=f"{closed_day} 10:00-11:00 UTC")
    response = post(gw.url, "/v1/chat/completions", key=secret)
    assert response.status_code == 429
    assert openai_error(response)["code"] == "outside_allowed_hours"
    opens = datetime.fromisoformat(response.headers["x-tollway-reset"])
    assert (opens.weekday(), opens.hour) == (_DAYS.index(closed_day), 10)
    assert abs(int(response.headers["retry-after"]) - (opens - datetime.now(UTC)).total_seconds()) <= 2
    assert fake.requests == []


def test_bad_requests_are_400_naming_the_problem(gateway_server) -> None:
    gw = gateway_server()
    secret, _ = gw.create_key()
    headers = {"authorization": f"Bearer {secret}", "content-type": "application/json"}
    broken = httpx.post(gw.url + "/v1/chat/completions", content=b"{not json", headers=headers)
    assert broken.status_code == 400
    assert "not valid JSON" in str(openai_error(broken)["message"])
    no_messages = post(gw.url, "/v1/chat/completions", {"model": "fast"}, key=secret)
    assert no_messages.status_code == 400
    assert "messages" in str(openai_error(no_messages)["message"])
    bad_tool = post(gw.url, "/v1/chat/completions", {**CHAT, "tools": [{"type": "function"}]}, key=secret)
    assert bad_tool.status_code == 400


def test_body_over_the_limit_is_413(gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server(gateway={"max_body_bytes": 2_000})
    secret, _ = gw.create_key()
    big = {"model": "fast", "messages": [{"role": "user", "content": "x" * 5_000}]}
    response = post(gw.url, "/v1/chat/completions", big, key=secret)
    assert response.status_code == 413
    assert "2000 bytes" in str(openai_error(response)["message"])
    assert fake.requests == []


@pytest.mark.parametrize("driver", DRIVERS)
def test_upstream_failures_are_502_and_504_without_the_upstream_key(driver: str, gateway_server, fake: FakeProvider) -> None:
    gw = gateway_server(router={"retries": 0})
    secret, _ = gw.create_key()
    fake.add(oai.error_reply(500, f"internal failure, key {UPSTREAM_KEY} is fine"))
    with pytest.raises(openai.InternalServerError) as failed:
        openai_call(driver, gw.url, secret, "chat.completions.create", **CHAT)
    assert failed.value.status_code == 502
    assert UPSTREAM_KEY not in failed.value.response.text
    fake.add(oai.error_reply(429, "slow down", retry_after=7))
    with pytest.raises(openai.RateLimitError) as limited:
        openai_call(driver, gw.url, secret, "chat.completions.create", **CHAT)
    assert limited.value.response.headers["retry-after"] == "7"


def test_upstream_timeout_is_504(gateway_server, fake: FakeProvider) -> None:
    base = fake.url
    gw = gateway_server(router={"retries": 0}, models={"fast": {
        "model": "openai/gpt-4o-mini", "api_base": base, "api_key": "env:TOLLWAY_TEST_UPSTREAM_KEY",
        "timeout": 0.3}})
    secret, _ = gw.create_key()
    fake.add(Reply(200, oai.text_reply("late").body, hang=1.5))
    response = post(gw.url, "/v1/chat/completions", key=secret)
    assert response.status_code == 504
    assert openai_error(response)["code"] == "upstream_timeout"


def test_unknown_paths_and_methods(gateway_server) -> None:
    gw = gateway_server()
    assert httpx.get(gw.url + "/v1/nothing").status_code == 404
    wrong = httpx.get(gw.url + "/v1/chat/completions")
    assert wrong.status_code == 405
    assert openai_error(wrong)["type"] == "invalid_request_error"
