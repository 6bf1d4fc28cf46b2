"""The demo's world: which provider it runs on, and the tollway.yaml it writes.

Two aliases, ``fast`` and ``smart``, are all the agents name; the config decides what
they are. With a provider key set (OpenAI, Anthropic or Gemini) they are that
provider's small and large model at real prices; otherwise both run the embedded local
model in-process, priced at demo rates (as if small and large hosted models) so the
spend table has something to show. Budgets, allowed hours and the MCP time server are
declared in the same file, as a user would.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from tollway.core.errors import ConfigError

LOCAL_MODEL = "local/qwen2.5-coder-0.5b"


@dataclass(frozen=True, slots=True)
class ProviderChoice:
    name: str
    fast: str
    smart: str
    key_env: str | None
    demo_prices: bool
    """True when prices are demo rates (the local model costs nothing to run)."""
    embedder: str = "local/qwen2.5-coder-0.5b"
    """The ``embed`` alias: the provider's embedding model, else the local model's
    embedding mode (demo quality, offline)."""
    images: str | None = None
    """The ``draw`` alias (None: the provider has no image API, or runs offline)."""


_CHOICES: dict[str, ProviderChoice] = {
    "openai": ProviderChoice("openai", "openai/gpt-4o-mini", "openai/gpt-4.1", "OPENAI_API_KEY", False,
                             "openai/text-embedding-3-small", "openai/gpt-image-1-mini"),
    "anthropic": ProviderChoice(
        "anthropic", "anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5",
        "ANTHROPIC_API_KEY", False,
    ),
    "gemini": ProviderChoice(
        "gemini", "gemini/gemini-2.5-flash-lite", "gemini/gemini-2.5-flash", "GEMINI_API_KEY", False,
        "gemini/gemini-embedding-001", "gemini/gemini-2.5-flash-image",
    ),
    "ollama": ProviderChoice("ollama", "ollama/llama3.2", "ollama/llama3.2", None, True),
    "local": ProviderChoice("local", LOCAL_MODEL, LOCAL_MODEL, None, True),
}
PROVIDER_NAMES = tuple(_CHOICES)

# Demo rates in USD per million tokens, for models that cost nothing to run here.
FAST_DEMO_PRICE = {"input": 0.15, "output": 0.60}
SMART_DEMO_PRICE = {"input": 2.50, "output": 10.00}
EMBED_DEMO_PRICE = {"input": 0.02, "output": 0}
"""As if text-embedding-3-small (the local model's embedding mode costs nothing to run)."""


def choose_provider(provider: str | None, model: str | None) -> ProviderChoice:
    """``--provider`` if given; else the first hosted provider whose key is set; else
    the local model. ``--model provider/model`` puts both aliases on that model."""
    if model:
        name = model.split("/", 1)[0]
        key_env = _CHOICES[name].key_env if name in _CHOICES else None
        return ProviderChoice(name, model, model, key_env, name in ("local", "ollama"))
    if provider:
        if provider not in _CHOICES:
            raise ConfigError(
                f"--provider {provider!r} is not one of {', '.join(PROVIDER_NAMES)}"
            )
        choice = _CHOICES[provider]
        if choice.key_env and not os.environ.get(choice.key_env):
            raise ConfigError(f"--provider {provider} needs {choice.key_env} to be set")
        return choice
    for name in ("openai", "anthropic", "gemini"):
        choice = _CHOICES[name]
        if choice.key_env and os.environ.get(choice.key_env):
            return choice
    return _CHOICES["local"]


def _deployment(target: str, key_env: str | None, price: dict[str, float] | None,
                name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": target, "name": name}
    if key_env:
        spec["api_key"] = f"env:{key_env}"
    if price is not None:
        spec["price"] = dict(price)
    return spec


def demo_config(choice: ProviderChoice, workdir: Path, bob_budget_usd: Decimal) -> dict[str, Any]:
    """The tollway.yaml the demo writes (as a mapping)."""
    fast_price = FAST_DEMO_PRICE if choice.demo_prices else None
    smart_price = SMART_DEMO_PRICE if choice.demo_prices else None
    return {
        "models": {
            "fast": [_deployment(choice.fast, choice.key_env, fast_price, "fast-model")],
            "smart": [_deployment(choice.smart, choice.key_env, smart_price, "smart-model")],
            **_media_aliases(choice),
        },
        "router": {"retries": 1, "backoff": {"base": 0.2, "max": 1.0}},
        "ledger": {"url": f"sqlite:///{workdir / 'ledger.db'}"},
        "budget_store": {"backend": "sqlite", "path": str(workdir / "budgets.db")},
        "budgets": [
            {"name": "acme-monthly", "scope": {"org": "acme"}, "limit": 50, "period": "month",
             "soft_threshold": 0.8},
            {"name": "bob-daily", "scope": {"user": "bob"}, "limit": float(bob_budget_usd),
             "period": "day", "timezone": "Europe/Berlin"},
        ],
        "hours": [
            {"name": "research-smart-office-hours",
             "scope": {"project": "research", "alias": "smart"},
             "windows": ["mon-fri 08:00-19:00"], "timezone": "Europe/Berlin",
             "action": "reroute", "to": "fast"},
        ],
        "mcp": {
            "time": {
                "command": sys.executable,
                "args": ["-m", "mcp_server_time", "--local-timezone", "Europe/Berlin"],
                # mcp-server-time needs no node; keep the child's PATH minimal.
                "env": {"PATH": os.path.dirname(sys.executable)},
            }
        },
    }


def _media_aliases(choice: ProviderChoice) -> dict[str, Any]:
    local = choice.embedder.startswith("local/")
    aliases = {"embed": [_deployment(choice.embedder, None if local else choice.key_env,
                                     EMBED_DEMO_PRICE if local else None, "embed-model")]}
    if choice.images is not None:
        aliases["draw"] = [_deployment(choice.images, choice.key_env, None, "draw-model")]
    return aliases


def write_config(config: dict[str, Any], workdir: Path) -> Path:
    path = workdir / "tollway.yaml"
    header = (
        "# Written by `tollway demo`. Agents name the aliases `fast` and `smart`;\n"
        "# change a `model:` line here and every agent on that alias follows.\n"
    )
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return path
