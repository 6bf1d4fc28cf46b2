"""``tollway check-config``: validate tollway.yaml and print what it resolves to.

Shows each alias with its deployments (resolved base URL, where the key comes from and
whether that variable is set: never the key itself), the router settings, the fallback
chains and how many budgets, hours, rate limits, prices and MCP servers are configured.
Exits 2 with the error (file, line, key, what was expected) when the config is invalid.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

from tollway.core.errors import ConfigError

_SENSITIVE_HEADER = re.compile(r"(?i)auth|key|token|secret|cookie|password")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@/\s]+@")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="PATH",
        help="the file to check (default: $TOLLWAY_CONFIG, else ./tollway.yaml)",
    )


def run(args: argparse.Namespace) -> int:
    from tollway.core.config import CONFIG_ENV, load_config

    try:
        settings = load_config(getattr(args, "config", None))
        if settings is None:
            print(
                f"tollway check-config: no config found: pass --config PATH, set {CONFIG_ENV}, "
                "or create ./tollway.yaml",
                file=sys.stderr,
            )
            return 2
        text = describe(settings)
    except ConfigError as exc:
        print(f"tollway check-config: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


def describe(settings: Any) -> str:
    """The resolved view of a config, secrets masked. Building it also checks what only
    resolution can find (a provider without a default base URL and no api_base, MCP
    server definitions)."""
    from tollway.core.assembly import build_deployments
    from tollway.core.providers import PROVIDERS

    out: list[str] = [f"config: {settings.source}", ""]
    out.append("models:" if settings.models else "models: (none)")
    for alias, specs in settings.models.items():
        out.append(f"  {alias}:")
        deployments = build_deployments(settings, alias)
        for spec, dep in zip(specs, deployments, strict=True):
            label = spec.model if dep.name == spec.model else f"{dep.name}: {spec.model}"
            out.append(f"    - {label}")
            out.append(f"        base: {dep.url('')}")
            if dep.api is not None:
                out.append(f"        api: {dep.api}")
            out.append(f"        key: {_key_source(spec, PROVIDERS[spec.provider])}")
            extras = [f"weight {spec.weight:g}"]
            timeouts = dep.timeouts
            total = "none" if timeouts.total is None else f"{timeouts.total:g}s"
            extras.append(
                f"timeout connect {timeouts.connect:g}s / read {timeouts.read:g}s / total {total}"
            )
            if spec.rpm:
                extras.append(f"rpm {spec.rpm}")
            if spec.tpm:
                extras.append(f"tpm {spec.tpm}")
            if spec.price:
                extras.append("price override")
            out.append(f"        {', '.join(extras)}")
            if spec.headers:
                shown = ", ".join(
                    f"{k}: {'***' if _SENSITIVE_HEADER.search(k) else v}"
                    for k, v in spec.headers.items()
                )
                out.append(f"        headers: {shown}")
    router = settings.router
    total_timeout = "none" if router.total_timeout is None else f"{router.total_timeout:g}s"
    out += [
        "",
        "router:",
        f"  strategy: {router.strategy}",
        f"  retries: {router.retries} (backoff {router.backoff.base:g}s doubling up to "
        f"{router.backoff.max:g}s, full jitter; Retry-After honoured up to "
        f"{router.retry_after_cap:g}s)",
        f"  cooldown: {router.cooldown:g}s after {router.allowed_fails} consecutive failure(s)",
        f"  max_attempts: {router.max_attempts}, total_timeout: {total_timeout}",
    ]
    if router.shared_health:
        out.append(
            f"  shared_health: {_mask_url(router.shared_health)} "
            f"(prefix {router.shared_health_prefix})"
        )
    out.append("")
    out.append("fallbacks:" if settings.fallbacks else "fallbacks: (none)")
    for alias, rules in settings.fallbacks.items():
        for rule in rules:
            out.append(f"  {alias} -> {rule.to} on {', '.join(rule.on)}")
    out.append("")
    out += _policies(settings)
    if settings.budget_store is not None:
        out.append(f"budget_store: {_store(settings.budget_store)}")
    out.append(f"ledger: {_ledger(settings.ledger_target)}")
    out.append(f"prices: {len(settings.price_overrides())} override(s)")
    out.append(f"mcp: {_mcp(settings)}")
    if settings.attribution:
        shown = ", ".join(f"{k}={v}" for k, v in settings.attribution.items())
        out.append(f"attribution defaults: {shown}")
    out += ["", "OK"]
    return "\n".join(out)


def _policies(settings: Any) -> list[str]:
    """Budgets, hours and rate limits, validated (a bad field is a ConfigError naming
    its line) and listed one per line, without opening any budget store."""
    from tollway.core.assembly import budget_store_options
    from tollway.core.assembly import validated_policies as _validated
    from tollway.core.cost.policy import BudgetPolicy, HoursPolicy, RateLimitPolicy

    budget_store_options(settings)  # the validator Model() uses, without opening the store
    out: list[str] = []
    for section, model in (("budgets", BudgetPolicy), ("hours", HoursPolicy),
                           ("rate_limits", RateLimitPolicy)):
        policies = _validated(settings, section, model)
        out.append(f"{section}: {len(policies)}" if policies else f"{section}: (none)")
        out += [f"  {policy.id}" for policy in policies]
    return out


def _key_source(spec: Any, provider: Any) -> str:
    names = [spec.key_env] if spec.key_env else list(provider.key_env)
    if not names:
        return "none (this provider needs no key)"
    states = [f"env:{n} ({'set' if os.environ.get(n) else 'missing'})" for n in names]
    text = " or ".join(states)
    if not spec.key_env and not provider.key_required:
        text += ", optional"
    return text


def _count(section: Any) -> str:
    if not section:
        return "none"
    return f"{len(section)} configured"


def _store(spec: Any) -> str:
    if isinstance(spec, str):
        return _mask_url(spec)
    backend = spec.get("backend") or spec.get("url") or "default"
    return _mask_url(str(backend))


def _ledger(target: Any) -> str:
    if target is False:
        return "off"
    if target is None:
        return "default (embedded SQLite)"
    return _mask_url(str(target))


def _mcp(settings: Any) -> str:
    if not settings.mcp:
        return "none"
    try:
        from tollway.mcp.config import servers_from_config
    except ImportError:
        return f"{len(settings.mcp)} section key(s)"
    servers = servers_from_config(settings)
    return f"{len(servers)} server(s): {', '.join(s.name for s in servers)}"


def _mask_url(url: str) -> str:
    return _URL_PASSWORD.sub(r"\1***@", url)
