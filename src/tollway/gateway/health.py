"""``/health/live`` (the process answers) and ``/health/ready`` (its stores answer too).

A load balancer should route on ``ready``: it reads the key store's version and asks
the budget store for its counters' reachability (a Redis ``PING`` or a trivial query),
so an instance that lost its database stops taking traffic instead of failing calls.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from tollway.gateway.http import HttpRequest, JSONReply, dumps

if TYPE_CHECKING:
    from tollway.gateway.runtime import Gateway

__all__ = ["live", "ready"]


async def live(gw: Gateway, req: HttpRequest) -> JSONReply:
    return JSONReply(200, dumps({"status": "ok"}))


def _check(gw: Gateway) -> dict[str, str]:
    checks: dict[str, str] = {}
    if gw.keys is not None:
        try:
            gw.keys.store.ping()
            checks["keys"] = "ok"
        except Exception as exc:
            checks["keys"] = f"error: {type(exc).__name__}"
    if gw.guard.opened:
        try:
            gw.guard.store.counters(time.time())
            checks["budgets"] = "ok"
        except Exception as exc:
            checks["budgets"] = f"error: {type(exc).__name__}"
    return checks


async def ready(gw: Gateway, req: HttpRequest) -> JSONReply:
    checks = await asyncio.to_thread(_check, gw)
    ok = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if ok else "unavailable", "checks": checks}
    return JSONReply(200 if ok else 503, dumps(body))
