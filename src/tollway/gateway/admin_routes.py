"""The admin API: the ``tollway keys`` commands over HTTP, behind the admin key.

    GET  /admin/keys                  every key (prefix, limits, state; never a secret)
    POST /admin/keys                  {org, project, user, name, models, budgets, rpm,
                                       tpm, hours, expires, tags, mcp, vector_stores,
                                       vector_store_writes} -> the key + its secret
                                      (mcp: ["time", "docs:search"] or "time,docs:search")
    POST /admin/keys/{id}/revoke      stops the key on every instance within a second
    POST /admin/keys/{id}/rotate      a new secret for the same key (limits and counters
                                       kept); the old secret stops working

Off (404) unless the admin key's environment variable is set. The secret is in the
creation / rotation answer only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tollway.core.errors import ConfigError
from tollway.gateway.errors import GatewayError
from tollway.gateway.http import HttpRequest, JSONReply, dumps
from tollway.gateway.key_store import KeyNotFoundError
from tollway.gateway.keys import new_key, parse_expiry, parse_mcp_grants

if TYPE_CHECKING:
    from tollway.gateway.key_store import KeyStore
    from tollway.gateway.runtime import Gateway

__all__ = ["create_key", "list_keys", "revoke_key", "rotate_key"]

_CREATE_FIELDS = ("org", "project", "user", "name", "models", "budgets", "rpm", "tpm", "hours",
                  "expires", "tags", "mcp", "vector_stores", "vector_store_writes")


def _store(gw: Gateway) -> KeyStore:
    if gw.keys is None:
        raise GatewayError(404, "this gateway runs without keys (gateway.auth: none)")
    return gw.keys.store


async def list_keys(gw: Gateway, req: HttpRequest) -> JSONReply:
    keys = await asyncio.to_thread(_store(gw).list)
    return JSONReply(200, dumps({"data": [key.to_json() for key in keys]}))


def key_options(body: Mapping[str, Any]) -> dict[str, Any]:
    """``new_key`` keyword arguments from an admin request body (typed 400 on mistakes)."""
    unknown = set(body) - set(_CREATE_FIELDS)
    if unknown:
        raise GatewayError(400, f"unknown field(s) {', '.join(sorted(unknown))}; expected "
                                f"{', '.join(_CREATE_FIELDS)}")
    options: dict[str, Any] = {k: body.get(k) for k in ("org", "project", "user", "name", "hours")}
    for name in ("rpm", "tpm"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise GatewayError(400, f"'{name}' must be a whole number >= 0", param=name)
        options[name] = value
    models = body.get("models")
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    options["models"] = models
    for field in ("vector_stores", "vector_store_writes"):
        stores = body.get(field) or []
        if isinstance(stores, str):
            stores = [v.strip() for v in stores.split(",") if v.strip()]
        if not isinstance(stores, list) or not all(isinstance(v, str) for v in stores):
            raise GatewayError(400, f"'{field}' is a list of store names (or '*')",
                               param=field)
        options[field] = stores
    budgets = body.get("budgets") or []
    options["budgets"] = [budgets] if isinstance(budgets, str) else list(budgets)
    options["tags"] = dict(body.get("tags") or {})
    options["expires_at"] = parse_expiry(body.get("expires"))
    mcp = body.get("mcp")
    if mcp is not None and not isinstance(mcp, str | list):
        raise GatewayError(400, "'mcp' must be a list of grants like ['time', 'docs:search'] "
                                "or a comma-separated string", param="mcp")
    options["mcp"] = parse_mcp_grants(mcp)
    return options


async def create_key(gw: Gateway, req: HttpRequest) -> JSONReply:
    body = req.json()
    if not isinstance(body, Mapping):
        raise GatewayError(400, "the body must be a JSON object")
    store = _store(gw)
    try:
        secret, key, digest = new_key(**key_options(body))
    except ConfigError as exc:
        raise GatewayError(400, str(exc)) from None
    await asyncio.to_thread(store.add, key, digest)
    return JSONReply(201, dumps({"key": secret, **key.to_json()}))


async def revoke_key(gw: Gateway, req: HttpRequest) -> JSONReply:
    try:
        key = await asyncio.to_thread(_store(gw).revoke, req.params["id"])
    except KeyNotFoundError as exc:
        raise GatewayError(404, str(exc), code="key_not_found") from None
    return JSONReply(200, dumps(key.to_json()))


async def rotate_key(gw: Gateway, req: HttpRequest) -> JSONReply:
    try:
        secret, key = await asyncio.to_thread(_store(gw).rotate, req.params["id"])
    except KeyNotFoundError as exc:
        raise GatewayError(404, str(exc), code="key_not_found") from None
    return JSONReply(200, dumps({"key": secret, **key.to_json()}))
