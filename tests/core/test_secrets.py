"""Secrets never leave: a provider that echoes the key back, in any format, on every
error path (a single target and failover; sync, async and streamed) shows it in no
error text, repr, exception chain, traceback, attempt list, DEBUG log or ledger row."""

from __future__ import annotations

import asyncio
import logging
import traceback
from pathlib import Path
from typing import Any

import pytest

import tollway
from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tollway import errors
from tollway.core.stores.open import open_ledger

CANARIES = {
    "openai": "sk-proj-CanaryOpenAI0123456789abcdef",
    "anthropic": "sk-ant-api03-CanaryAnthropic0123456789",
    "google": "AIzaSyCanaryGoogle0123456789abcdefghij",
    "groq": "gsk_CanaryGroq0123456789abcdefghijklmn",
    "azure": "0123456789abcdef0123456789abcdef",
    "arbitrary": "plain-words-canary-that-matches-no-pattern",
}
HEADER_SECRET = "header-canary-0123456789-zyxw"


def _echo(fake: FakeProvider, key: str, status: int) -> None:
    """Every request is refused with a body that repeats the key and the header."""
    fake.default = oai.error_reply(
        status, f"Incorrect API key provided: {key}. Header was {HEADER_SECRET}.",
        retry_after=0 if status == 429 else None,
    )


def _texts(exc: BaseException) -> list[str]:
    out = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    seen: BaseException | None = exc
    while seen is not None:
        out += [str(seen), repr(seen), repr(vars(seen))]
        seen = seen.__cause__ or seen.__context__
    for _, inner in getattr(exc, "attempts", []) or []:
        out += [str(inner), repr(inner), repr(vars(inner))]
    return out


def _call(model: tollway.Model, how: str) -> Any:
    if how == "sync":
        return model.complete("hi")
    if how == "async":
        return asyncio.run(model.acomplete("hi"))
    with model.stream("hi") as stream:
        return stream.collect()


@pytest.mark.parametrize("how", ["sync", "async", "stream"])
@pytest.mark.parametrize("status", [401, 429, 500])
@pytest.mark.parametrize("kind", sorted(CANARIES))
def test_an_echoed_key_of_any_format_appears_nowhere(
    fake: FakeProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    kind: str, status: int, how: str,
) -> None:
    key = CANARIES[kind]
    _echo(fake, key, status)
    ledger = open_ledger(tmp_path / "ledger.db")
    model = tollway.Model(
        "openai_compatible/m", api_key=key, api_base=fake.url, config=False, ledger=ledger,
        headers={"x-team-token": HEADER_SECRET},
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(errors.ProviderError) as info:
        _call(model, how)
    texts = _texts(info.value)
    texts += [repr(model), repr(model.deployments), caplog.text]
    texts += [repr(row) for row in ledger.records()]  # type: ignore[attr-defined]
    ledger.close()
    assert fake.requests and fake.requests[0].headers["authorization"] == f"Bearer {key}"
    for text in texts:
        assert key not in text and HEADER_SECRET not in text


@pytest.mark.parametrize("how", ["sync", "async"])
def test_failover_attempts_and_all_failed_errors_carry_no_key(
    fake: FakeProvider, tmp_path: Path, how: str
) -> None:
    key = CANARIES["groq"]
    _echo(fake, key, 500)
    config = {
        "models": {"a": [
            {"model": "openai_compatible/m", "api_base": fake.url, "name": "one",
             "api_key": "env:TOLLWAY_CANARY_KEY"},
            {"model": "openai_compatible/m", "api_base": fake.url, "name": "two",
             "api_key": "env:TOLLWAY_CANARY_KEY"},
        ]},
        "router": {"retries": 0},
        "ledger": f"sqlite:///{tmp_path / 'ledger.db'}",
    }
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TOLLWAY_CANARY_KEY", key)
        model = tollway.Model("a", config=config)
        with pytest.raises(errors.AllDeploymentsFailedError) as info:
            _call(model, how)
    assert len(info.value.attempts) == 2
    for text in _texts(info.value):
        assert key not in text
    ledger = open_ledger(tmp_path / "ledger.db")
    rows = ledger.records()  # type: ignore[attr-defined]
    ledger.close()
    assert [r.status for r in rows] == ["ServerError", "ServerError"]
    assert all(key not in repr(r) for r in rows)
