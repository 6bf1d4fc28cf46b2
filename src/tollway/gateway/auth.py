"""Who is calling: the virtual key behind a request, or the admin.

A key arrives as ``Authorization: Bearer sk-tw-...`` (OpenAI SDKs, Claude Code's
``ANTHROPIC_AUTH_TOKEN``) or ``x-api-key: sk-tw-...`` (the Anthropic SDK). Missing,
unknown, revoked and expired keys are all 401, each with a message saying which, and
none of them echoing the secret. The admin key is compared in constant time.
"""

from __future__ import annotations

import hmac
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tollway.gateway.errors import GatewayError

if TYPE_CHECKING:
    from tollway.gateway.keys import VirtualKey
    from tollway.gateway.runtime import Gateway

__all__ = ["authenticate", "check_admin", "presented_secret"]


def presented_secret(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization")
    if value:
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    value = headers.get("x-api-key")
    return value.strip() if value and value.strip() else None


async def authenticate(gateway: Gateway, headers: dict[str, str]) -> VirtualKey | None:
    """The caller's key (None when the gateway runs with ``auth: none``)."""
    cache = gateway.keys
    if cache is None:
        return None
    secret = presented_secret(headers)
    if secret is None:
        raise GatewayError(401, "missing API key: send 'Authorization: Bearer <key>' or "
                                "'x-api-key: <key>' with a key from `tollway keys create`",
                           code="missing_api_key")
    hit, key = cache.cached(secret)
    if not hit:
        try:
            key = await cache.alookup(secret)
        except Exception as exc:
            raise GatewayError(503, f"the key store cannot be read ({type(exc).__name__}); "
                                    "try again shortly", code="key_store_unavailable",
                               retry_after=1) from None
    if key is None:
        raise GatewayError(401, "unknown API key: check it, or create one with "
                                "`tollway keys create`", code="invalid_api_key")
    if key.revoked_at is not None:
        raise GatewayError(401, f"API key {key.prefix}... ({key.id}) was revoked",
                           code="revoked_api_key")
    if key.expires_at is not None and time.time() >= key.expires_at:
        when = datetime.fromtimestamp(key.expires_at, UTC).isoformat()
        raise GatewayError(401, f"API key {key.prefix}... ({key.id}) expired at {when}",
                           code="expired_api_key")
    gateway.guard.admit(key)
    return key


def check_admin(gateway: Gateway, headers: dict[str, str]) -> None:
    """401 / 403 unless the request carries the admin key; 404 when no admin key is
    set (the admin API is off, as if it did not exist)."""
    if gateway.admin_key is None:
        raise GatewayError(404, "the admin API is off: set the admin key's environment "
                                f"variable ({gateway.spec.admin_key_env}) to turn it on",
                           code="admin_api_off")
    secret = presented_secret(headers)
    if secret is None:
        raise GatewayError(401, "missing admin key", code="missing_api_key")
    if not hmac.compare_digest(secret.encode(), gateway.admin_key.encode()):
        raise GatewayError(403, "this is not the admin key", code="not_admin")
