"""Budget overshoot: a USD budget worth 2.5 calls, 50 calls at once. How many reached
the provider?

Each call asks for ``max_tokens=6`` with an 80-character prompt; the fake server bills
25 input + 6 output tokens, so every call costs the same (gpt-4o-mini prices, priced by
each library's own table). The budget is 2.5 times that cost, so an exact enforcer lets
2 calls through (a third would spend 3 calls' worth). The server's request counter says
how many calls really reached it; "spend / limit" is what those calls cost against
the budget.

tollway reserves each call's upper bound before sending it (input estimated from the
text, output = max_tokens) on the memory, SQLite and Redis stores. LiteLLM's budget
mechanisms that run without its proxy database are measured:

- ``litellm.max_budget``: the SDK-wide budget, checked against the cost of finished
  calls before each new one;
- Router deployment budget: ``max_budget`` + ``budget_duration`` in a deployment's
  ``litellm_params`` (RouterBudgetLimiting with its in-memory cache); ``num_retries=0``
  because by default the router retries a denied call with back-off (about 5 s each),
  which changes nothing about what reaches the server but slows the run;
- ``BudgetManager``: its documented check-then-call pattern
  (``get_current_cost(user) <= get_total_budget(user)``, call, ``update_cost``).

Both a concurrent wave (50 at once) and 10 calls in a row are run.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from _clients import budget_guard, label
from _common import API_KEY, LITELLM_MODEL, MODEL, TOLLWAY_MODEL
from _report import Table
from fake_server import server_count, server_reset

PROMPT = [{"role": "user",
           "content": "Summarise the quarterly report in one sentence and name the three largest costs."}]
MAX_TOKENS = 6
USAGE = (25, 6)
"""What the fake server bills per call: prompt and completion tokens."""
WORTH = Decimal("2.5")
CONCURRENT = 50
SEQUENTIAL = 10

TOLLWAY_CASES = ["tollway:memory", "tollway:sqlite", "tollway:redis"]
LITELLM_CASES = ["litellm:max_budget", "litellm:router_deployment_budget", "litellm:budget_manager"]
LABELS = {
    "tollway:memory": "tollway, memory store",
    "tollway:sqlite": "tollway, SQLite store",
    "tollway:redis": "tollway, Redis store",
    "litellm:max_budget": "litellm.max_budget (SDK)",
    "litellm:router_deployment_budget": "litellm Router deployment max_budget",
    "litellm:budget_manager": "litellm BudgetManager",
}


async def _wave(call: Any, n: int, concurrent: bool) -> dict[str, Any]:
    """``n`` calls, all at once or one after another; how each ended."""
    outcome: dict[str, Any] = {"ok": 0, "denied": 0, "other_errors": 0}

    async def one() -> None:
        try:
            await call()
            outcome["ok"] += 1
        except Exception as exc:
            name = type(exc).__name__
            budgetish = "Budget" in name or "budget" in str(exc).lower()
            outcome["denied" if budgetish else "other_errors"] += 1
            outcome.setdefault("first_denial" if budgetish else "first_error",
                               f"{name}: {str(exc)[:160]}")

    if concurrent:
        await asyncio.gather(*(one() for _ in range(n)))
    else:
        for _ in range(n):
            await one()
    return outcome


# --------------------------------------------------------------------------- tollway


def _tollway_cost_nanos() -> int:
    from tollway.core.cost.pricing import default_pricebook
    from tollway.core.types import Usage

    cost = default_pricebook().price("openai", MODEL, Usage(input_tokens=USAGE[0], output_tokens=USAGE[1]))
    assert cost, "tollway has no price for gpt-4o-mini"
    return int(cost)


async def _tollway(store: str, url: str, tmp: Path, concurrent: bool) -> dict[str, Any]:
    import tollway
    from tollway.core.cost.estimate import upper_bound
    from tollway.core.cost.pricing import default_pricebook
    from tollway.core.inputs import build_request

    cost = _tollway_cost_nanos()
    limit = Decimal(cost) * WORTH / Decimal(10**9)
    guard = budget_guard(store, tmp, [{"name": f"overshoot-{time.time_ns()}", "limit": limit,
                                       "period": "day"}])
    model = tollway.Model(TOLLWAY_MODEL, api_base=url, api_key=API_KEY, ledger=False, guards=[guard])
    bound = upper_bound(build_request(PROMPT, max_tokens=MAX_TOKENS),
                        default_pricebook().model_price("openai", MODEL))
    outcome = await _wave(lambda: model.acomplete(PROMPT, max_tokens=MAX_TOKENS),
                          CONCURRENT if concurrent else SEQUENTIAL, concurrent)
    rows = await guard.astatus()
    spent = sum(float(r.spent) for r in rows)
    return {**outcome, "cost_per_call_usd": cost / 1e9, "limit_usd": float(limit),
            "spent_reported_usd": spent, "reservation_usd": (bound.cost_nanos or 0) / 1e9,
            "estimated_input_tokens": bound.input_tokens}


# --------------------------------------------------------------------------- litellm


def _litellm_cost() -> float:
    import litellm

    prompt, completion = litellm.cost_per_token(model=MODEL, prompt_tokens=USAGE[0],
                                                completion_tokens=USAGE[1])
    return float(prompt + completion)


async def _litellm(mechanism: str, url: str, concurrent: bool) -> dict[str, Any]:
    import litellm

    cost = _litellm_cost()
    limit = cost * float(WORTH)
    n = CONCURRENT if concurrent else SEQUENTIAL
    extra: dict[str, Any] = {}
    kwargs = {"messages": PROMPT, "max_tokens": MAX_TOKENS}
    if mechanism == "max_budget":
        litellm.max_budget = limit

        async def call() -> Any:
            return await litellm.acompletion(model=LITELLM_MODEL, api_base=url, api_key=API_KEY, **kwargs)

        outcome = await _wave(call, n, concurrent)
        await asyncio.sleep(0.5)  # let success logging add the last costs
        extra["spent_reported_usd"] = float(litellm._current_cost)
    elif mechanism == "router_deployment_budget":
        from litellm import Router

        router = Router(model_list=[{"model_name": "bench", "litellm_params": {
            "model": LITELLM_MODEL, "api_base": url, "api_key": API_KEY,
            "max_budget": limit, "budget_duration": "1d"}}], num_retries=0)

        async def call() -> Any:
            return await router.acompletion(model="bench", **kwargs)

        outcome = await _wave(call, n, concurrent)
    elif mechanism == "budget_manager":
        from litellm import BudgetManager

        manager = BudgetManager(project_name="bench")
        manager.create_budget(total_budget=limit, user="bench-user")

        async def call() -> Any:
            if manager.get_current_cost(user="bench-user") > manager.get_total_budget("bench-user"):
                raise RuntimeError("budget exceeded (BudgetManager check)")
            response = await litellm.acompletion(model=LITELLM_MODEL, api_base=url, api_key=API_KEY,
                                                 **kwargs)
            manager.update_cost(completion_obj=response, user="bench-user")
            return response

        outcome = await _wave(call, n, concurrent)
        extra["spent_reported_usd"] = float(manager.get_current_cost(user="bench-user"))
    else:
        raise ValueError(mechanism)
    return {**outcome, **extra, "cost_per_call_usd": cost, "limit_usd": limit}


# --------------------------------------------------------------------------- jobs


def run(job: dict[str, Any]) -> dict[str, Any]:
    kind, _, what = job["client"].partition(":")
    url, tmp = job["url"], Path(job["tmp"])
    concurrent = job["case"] == "concurrent"

    async def main() -> dict[str, Any]:
        server_reset(url)
        if kind == "tollway":
            result = await _tollway(what, url, tmp, concurrent)
        else:
            result = await _litellm(what, url, concurrent)
        result["reached_server"] = server_count(url)["ok"]
        return result

    result = asyncio.run(main())
    result["calls"] = CONCURRENT if concurrent else SEQUENTIAL
    result["exact_allowed"] = int(WORTH)
    result["spend_over_limit"] = result["reached_server"] * result["cost_per_call_usd"] / result["limit_usd"]
    return result


def jobs(cfg: dict[str, Any], env: dict[str, Any]) -> list[dict[str, Any]]:
    cases = [c for c in TOLLWAY_CASES if f"overshoot:{c.partition(':')[2]}" not in env["skip"]]
    if "litellm" not in env["skip"]:
        cases += LITELLM_CASES
    return [
        # the pool runs a job in the worker of its "client"; these ids name the library
        {"family": "overshoot", "case": case, "client": c, "url": env["url"], "params": {},
         "rep": rep, "timeout": 120.0}
        for rep in range(cfg["overshoot_reps"]) for case in ("concurrent", "sequential") for c in cases
    ]


def summarize(results: list[dict[str, Any]], env: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    table = Table(f"budget overshoot: budget worth {WORTH} calls ({int(WORTH)} may pass)", [
        ("label", "mechanism", "s"),
        ("reached_concurrent", f"{CONCURRENT} at once: reached server", "s"),
        ("over_concurrent", "spend / limit", "s"),
        ("reached_sequential", f"{SEQUENTIAL} in a row: reached server", "s"),
        ("over_sequential", "spend / limit", "s"),
    ])
    data: dict[str, Any] = {}
    for name in TOLLWAY_CASES + LITELLM_CASES:
        mine = [r for r in results if r.get("client") == name]
        if not mine:
            continue
        row: dict[str, Any] = {"client": name, "label": LABELS.get(name, label(name))}
        for case in ("concurrent", "sequential"):
            ok = [r for r in mine if r.get("case") == case and "error" not in r]
            reached = sorted({r["reached_server"] for r in ok})
            row[f"reached_{case}"] = "/".join(str(x) for x in reached) if ok else "error"
            row[f"over_{case}"] = "/".join(f"{r['spend_over_limit']:.0%}" for r in ok) or None
            row[f"{case}_runs"] = ok
            for r in mine:
                if r.get("case") == case and "error" in r:
                    table.notes.append(f"{row['label']} ({case}): {str(r['error']).splitlines()[-1][:200]}")
        table.rows.append(row)
        data[name] = row
    sample = next((r for r in results if "reservation_usd" in r), None)
    if sample:
        table.notes.append(
            f"cost per call {sample['cost_per_call_usd'] * 1e6:.2f} micro-USD, limit "
            f"{sample['limit_usd'] * 1e6:.3f}; tollway reserves {sample['reservation_usd'] * 1e6:.2f} "
            f"per call (estimated {sample['estimated_input_tokens']} input tokens + {MAX_TOKENS} output)")
    table.notes.append("several repetitions show as a/b (distinct values)")
    budget_runs = [r for r in results if r.get("client") == "litellm:max_budget" and "error" not in r]
    if budget_runs and all(not r.get("spent_reported_usd") for r in budget_runs):
        table.notes.append("litellm.max_budget: litellm._current_cost stayed 0 (this version adds "
                           "to it only for results carrying 'content', not chat completions), "
                           "so it never denied a call")
    for key, reason in env["skip"].items():
        if key.startswith("overshoot:"):
            table.notes.append(f"tollway {key.partition(':')[2]} store: skipped ({reason})")
    return [table], data
