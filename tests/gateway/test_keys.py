"""Virtual keys: the lifecycle through the admin API, the limits they are written with,
and that a secret is never stored or logged in clear."""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.fakes import replies_openai as oai
from tests.fakes.server import FakeProvider
from tollway.core.errors import ConfigError
from tollway.gateway.key_store import KeyNotFoundError, SQLiteKeyStore
from tollway.gateway.keys import hash_secret, new_key, parse_budget, parse_expiry

ADMIN = "admin-secret-for-tests-0123456789"
CHAT = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def chat_status(url: str, secret: str) -> int:
    return httpx.post(url + "/v1/chat/completions", json=CHAT, headers=bearer(secret)).status_code


def wait_for_status(url: str, secret: str, status: int, within: float = 1.0) -> float:
    start = time.monotonic()
    while chat_status(url, secret) != status:
        assert time.monotonic() - start < within, f"no {status} within {within}s"
    return time.monotonic() - start


def test_admin_api_is_off_without_an_admin_key(gateway_server) -> None:
    gw = gateway_server()
    response = httpx.get(gw.url + "/admin/keys", headers=bearer("anything"))
    assert response.status_code == 404
    assert "TOLLWAY_ADMIN_KEY" in response.json()["error"]["message"]


def test_key_lifecycle_through_the_admin_api(gateway_server, fake: FakeProvider,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLWAY_ADMIN_KEY", ADMIN)
    gw = gateway_server()
    fake.default = oai.text_reply("ok")
    assert httpx.get(gw.url + "/admin/keys").status_code == 401
    assert httpx.get(gw.url + "/admin/keys", headers=bearer("wrong")).status_code == 403

    created = httpx.post(gw.url + "/admin/keys", headers=bearer(ADMIN), json={
        "org": "acme", "project": "search", "models": "fast,claude", "budgets": ["10 usd/day"],
        "rpm": 60, "expires": "30d", "tags": {"team": "ml"}})
    assert created.status_code == 201
    body = created.json()
    secret, key_id = body["key"], body["id"]
    assert secret.startswith("sk-tw-") and len(secret) >= 40
    assert secret.startswith(body["prefix"]) and len(body["prefix"]) < 16
    assert (body["models"], body["budgets"], body["rpm"]) == (["fast", "claude"], ["10 usd/day"], 60)
    assert chat_status(gw.url, secret) == 200

    listed = httpx.get(gw.url + "/admin/keys", headers=bearer(ADMIN)).json()["data"]
    assert [k["id"] for k in listed] == [key_id]
    assert secret not in str(listed) and hash_secret(secret) not in str(listed)

    rotated = httpx.post(f"{gw.url}/admin/keys/{key_id}/rotate", headers=bearer(ADMIN)).json()
    new_secret = rotated["key"]
    assert new_secret != secret and rotated["id"] == key_id
    assert chat_status(gw.url, new_secret) == 200
    wait_for_status(gw.url, secret, 401)

    revoked = httpx.post(f"{gw.url}/admin/keys/{key_id}/revoke", headers=bearer(ADMIN))
    assert revoked.json()["revoked_at"] is not None
    took = wait_for_status(gw.url, new_secret, 401)
    assert took < 1.0
    missing = httpx.post(f"{gw.url}/admin/keys/key_nope/revoke", headers=bearer(ADMIN))
    assert missing.status_code == 404
    bad = httpx.post(gw.url + "/admin/keys", headers=bearer(ADMIN), json={"budgets": ["lots"]})
    assert bad.status_code == 400
    assert "10 usd/day" in bad.json()["error"]["message"]


def test_secrets_are_never_stored_or_logged_in_clear(gateway_server, fake: FakeProvider,
                                                     tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    gw = gateway_server()
    fake.default = oai.text_reply("ok")
    secret, key = gw.create_key(org="acme", budgets=["1 usd/day"])
    assert chat_status(gw.url, secret) == 200
    gw.gateway.keys.store.revoke(key.id)
    wait_for_status(gw.url, secret, 401)
    bogus = "sk-tw-" + "z" * 43
    assert chat_status(gw.url, bogus) == 401

    # every file the stores keep: the databases, their WAL, the budget store's spool
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("*.db*/**/*") if p.is_file())
    stored += b"".join(p.read_bytes() for p in tmp_path.glob("*.db*") if p.is_file())
    assert hash_secret(secret).encode() in stored  # what the store keeps instead
    for text in (secret, bogus):
        assert text.encode() not in stored
        assert text[len(key.prefix):].encode() not in stored  # not even the unshown part
        assert text not in caplog.text


@pytest.mark.parametrize(("text", "expected"), [
    ("10 usd/day", (Decimal(10), "usd", "day")),
    ("$5/month", (Decimal(5), "usd", "month")),
    ("0.25 usd per hour", (Decimal("0.25"), "usd", "hour")),
    ("200000 tokens/week", (Decimal(200000), "tokens", "week")),
    ("100 requests/minute", (Decimal(100), "requests", "minute")),
])
def test_budgets_are_read_as_the_cli_writes_them(text: str, expected: tuple[Decimal, str, str]) -> None:
    assert parse_budget(text) == expected


@pytest.mark.parametrize("text", ["lots", "10 euros/day", "10 usd/fortnight", "1.5 tokens/day"])
def test_unreadable_budgets_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_budget(text)


def test_expiry_durations_and_dates() -> None:
    assert parse_expiry("30d", now=1000.0) == 1000.0 + 30 * 86400
    assert parse_expiry("12h", now=0.0) == 43200
    assert parse_expiry("never") is None
    assert parse_expiry("2030-01-01") == 1893456000.0
    with pytest.raises(ConfigError, match="30d"):
        parse_expiry("soon")


def test_bad_hours_fail_at_creation() -> None:
    with pytest.raises(ConfigError):
        new_key(hours="mon-fri 25:00-26:00 UTC")


def test_store_rotation_keeps_the_key_and_refuses_revoked_ones(tmp_path: Path) -> None:
    store = SQLiteKeyStore(tmp_path / "k.db")
    secret, key, digest = new_key(org="acme", models=["fast"])
    store.add(key, digest)
    version = store.version()
    new_secret, rotated = store.rotate(key.id)
    assert store.by_hash(hash_secret(secret)) is None
    assert store.by_hash(hash_secret(new_secret)) == rotated
    assert (rotated.id, rotated.org, rotated.models) == (key.id, "acme", ("fast",))
    assert store.version() == version + 1
    store.revoke(key.id)
    with pytest.raises(ConfigError, match="revoked"):
        store.rotate(key.id)
    with pytest.raises(KeyNotFoundError):
        store.get("key_missing")
    store.close()
