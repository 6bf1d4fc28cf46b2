"""Router failover: an alias whose preferred deployment answers 500.

Two deployments of the same model behind one alias: ``broken`` (the fake server's
``/fail`` path: HTTP 500) with weight 1,000,000 and ``healthy`` with weight 1, so
practically every call goes to ``broken`` first and must fail over within the call.
Cooldown is switched off (tollway: ``cooldown: 0`` and a huge ``allowed_fails``;
LiteLLM: ``disable_cooldowns=True``) so EVERY measured call pays the failover, and the
server's counters confirm it (``fails/call`` should be 1.00). The raw baselines do the
same by hand: POST to /fail, see the 500, POST to the healthy path (raw httpx; for the
async case also the raw client of tollway's own async stack, which tollway is paired
with).

LiteLLM Router settings: ``num_retries=0`` and ``enable_weighted_failover=True`` (a
retryable failure re-picks among the OTHER deployments of the group; without it the
router retried the broken deployment and failed the call). Its sync ``completion``
path does the same through its regular fallback flow.

A second case keeps each router's DEFAULTS (equal weights, cooldown on) and reports how
many calls still reached the broken deployment: the circuit breaker at work.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from _clients import label, same_stack
from _common import API_KEY, HEADERS, LITELLM_MODEL, PROMPT, TOLLWAY_MODEL
from _measure import asequential, sequential
from _report import Table, by_client, latency_table, med
from fake_server import server_count, server_reset

CLIENTS = ["httpx", "litellm", "tollway"]
WEIGHTS = (1_000_000, 1)


def _tollway(url: str, forced: bool) -> Any:
    import tollway
    from tollway.core.config import TollwaySettings

    deployments = [
        {"model": TOLLWAY_MODEL, "name": "broken", "api_base": f"{url}/fail",
         "api_key": "env:OPENAI_API_KEY"},
        {"model": TOLLWAY_MODEL, "name": "healthy", "api_base": url,
         "api_key": "env:OPENAI_API_KEY"},
    ]
    config: dict[str, Any] = {"models": {"bench": deployments}, "ledger": False}
    if forced:
        deployments[0]["weight"], deployments[1]["weight"] = WEIGHTS
        config["router"] = {"cooldown": 0, "allowed_fails": 1_000_000_000}
    return tollway.Model("bench", config=TollwaySettings.from_dict(config))


def _litellm(url: str, forced: bool) -> Any:
    from litellm import Router

    model_list = [
        {"model_name": "bench", "litellm_params": {
            "model": LITELLM_MODEL, "api_base": f"{url}/fail", "api_key": API_KEY}},
        {"model_name": "bench", "litellm_params": {
            "model": LITELLM_MODEL, "api_base": url, "api_key": API_KEY}},
    ]
    if not forced:
        return Router(model_list=model_list)
    model_list[0]["litellm_params"]["weight"], model_list[1]["litellm_params"]["weight"] = WEIGHTS
    return Router(model_list=model_list, num_retries=0, disable_cooldowns=True,
                  enable_weighted_failover=True)


def run(job: dict[str, Any]) -> dict[str, Any]:
    client, url, params, case = job["client"], job["url"], job["params"], job["case"]
    forced = case != "defaults"
    sync = case == "failover-sync"
    fail_target, ok_target = f"{url}/fail/chat/completions", f"{url}/chat/completions"
    body = json.dumps({"model": "gpt-4o-mini", "messages": PROMPT}, separators=(",", ":")).encode()

    def reset() -> None:
        server_reset(url)

    failed: list[str] = []

    def tolerant(fn: Any) -> Any:
        """With default settings a router may fail a call (LiteLLM retries the broken
        deployment); count those instead of stopping the case."""
        if forced:
            return fn

        async def acall_tolerant() -> Any:
            try:
                return await fn()
            except Exception as exc:
                failed.append(type(exc).__name__)
                return None

        return acall_tolerant

    if sync:
        if client == "httpx":
            import httpx

            http = httpx.Client()

            def call() -> Any:
                if http.post(fail_target, content=body, headers=HEADERS).status_code >= 500:
                    return json.loads(http.post(ok_target, content=body, headers=HEADERS).content)
                raise AssertionError("the broken deployment answered")
        elif client == "litellm":
            router = _litellm(url, forced)

            def call() -> Any:
                return router.completion(model="bench", messages=PROMPT)
        else:
            model = _tollway(url, forced)

            def call() -> Any:
                return model.complete(PROMPT)

        result = sequential(call, params, on_start=reset)
    else:
        async def main() -> dict[str, Any]:
            if client == "aiohttp":
                import aiohttp

                session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024))

                async def acall() -> Any:
                    async with session.post(fail_target, data=body, headers=HEADERS) as bad:
                        await bad.read()
                        if bad.status < 500:
                            raise AssertionError("the broken deployment answered")
                    async with session.post(ok_target, data=body, headers=HEADERS) as ok:
                        return json.loads(await ok.read())
            elif client in ("httpx", "httpx-aiohttp"):
                import httpx

                if client == "httpx":
                    ahttp = httpx.AsyncClient()
                else:
                    from httpx_aiohttp import HttpxAiohttpClient

                    ahttp = HttpxAiohttpClient()

                async def acall() -> Any:
                    resp = await ahttp.post(fail_target, content=body, headers=HEADERS)
                    if resp.status_code >= 500:
                        ok = await ahttp.post(ok_target, content=body, headers=HEADERS)
                        return json.loads(ok.content)
                    raise AssertionError("the broken deployment answered")
            elif client == "litellm":
                router = _litellm(url, forced)

                async def acall() -> Any:
                    return await router.acompletion(model="bench", messages=PROMPT)
            else:
                model = _tollway(url, forced)

                async def acall() -> Any:
                    return await model.acomplete(PROMPT)

            return await asequential(tolerant(acall), params, on_start=reset)

        result = asyncio.run(main())
    counts = server_count(url)
    calls = max(1, counts["ok"])
    result["fails_per_call"] = counts["fail"] / calls
    result["broken_hits"] = counts["fail"]
    result["healthy_hits"] = counts["ok"]
    result["failed_calls"] = len(failed)
    return result


def jobs(cfg: dict[str, Any], env: dict[str, Any]) -> list[dict[str, Any]]:
    params = {"warmup": max(5, cfg["warmup"] // 2), "min_calls": max(20, cfg["min_calls"] // 2),
              "max_calls": cfg["max_calls"], "seconds": cfg["router_seconds"]}
    usable = [c for c in CLIENTS if c not in env["skip"] and f"router:{c}" not in env["skip"]]
    out = []
    # the by-hand async baseline on tollway's own async stack, beside raw httpx
    stack = same_stack("tollway", env.get("tollway_transport", "httpx"))
    async_clients = usable + ([stack] if stack != "httpx" and stack not in env["skip"] else [])
    for case, clients in (("failover-sync", usable), ("failover-async", async_clients),
                          ("defaults", [c for c in usable if c != "httpx"])):
        for rep in range(cfg["reps"] if case != "defaults" else 1):
            shift = rep % len(clients)
            for client in clients[shift:] + clients[:shift]:
                p = params if case != "defaults" else {  # every call counted, from the first
                    "warmup": 0, "min_calls": 200, "max_calls": 200, "seconds": 60.0}
                out.append({"family": "router", "case": case, "client": client,
                            "url": env["url"], "params": p, "rep": rep})
    return out


def summarize(results: list[dict[str, Any]], env: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    tables = []
    data: dict[str, Any] = {}
    for case, title in (("failover-sync", "router failover, sync (every call: 500, then 200)"),
                        ("failover-async", "router failover, async (every call: 500, then 200)")):
        transport = env.get("tollway_transport", "httpx") if case == "failover-async" else "httpx"
        table, rows = latency_table(title, results, case, "httpx", notes=[
            "raw = the two requests by hand; added = the router's own cost per failover"],
            against={"tollway": same_stack("tollway", transport)})
        table.columns.insert(4, ("fails_per_call", "fails/call", "{:.2f}"))
        for row in table.rows:
            row["fails_per_call"] = med(by_client(results, case).get(row["client"], []),
                                        "fails_per_call")
        tables.append(table)
        data[case] = rows
    defaults = Table("routers with their default settings, 200 calls (cooldown on)", [
        ("label", "client", "s"), ("broken_hits", "calls sent to the broken deployment", "{}"),
        ("healthy_hits", "to the healthy one", "{}"),
        ("failed_calls", "calls that failed", "{}"), ("p50_us", "p50 us", "{:.1f}"),
        ("p99_us", "p99 us", "{:.1f}"),
    ], notes=["tollway: allowed_fails 3, cooldown 30 s, equal weights; "
              "litellm: Router(model_list) defaults (num_retries 2, no weighted failover); "
              "p50/p99 over all 200 calls, failed ones included"])
    for client, rows in by_client(results, "defaults").items():
        row = {"client": client, "label": label(client), **{
            k: med(rows, k) for k in ("broken_hits", "healthy_hits", "failed_calls", "p50_us",
                                      "p99_us")}}
        defaults.rows.append(row)
        data.setdefault("defaults", {})[client] = row
    tables.append(defaults)
    for client in CLIENTS:
        reason = env["skip"].get(client) or env["skip"].get(f"router:{client}")
        if reason:
            tables[0].notes.append(f"{label(client)}: skipped ({reason})")
    return tables, data
