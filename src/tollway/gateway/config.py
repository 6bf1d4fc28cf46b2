"""The ``gateway:`` section of tollway.yaml, validated with file / line errors.

    gateway:
      auth: keys                      # keys (default) | none (no key asked: local use only)
      keys: postgresql://db/tollway   # the virtual-key store: a SQLite path (default
                                      # $TOLLWAY_KEYS_DB or ~/.local/share/tollway/keys.db)
                                      # or a PostgreSQL URL (many gateway machines)
      admin_key_env: TOLLWAY_ADMIN_KEY  # env var holding the admin API key; no key, no API
      budget_store: redis://cache:6379/0  # where key budgets / rate limits count (default:
                                      # the top-level budget_store, else the SQLite default)
      max_body_bytes: 4194304         # larger request bodies get 413 (uploads too)
      files_dir: /var/lib/tollway/files  # where POST /v1/files keeps uploads (default:
                                      # <ledger>.files next to a SQLite ledger, else
                                      # ~/.local/share/tollway/files)
      key_refresh_seconds: 0.25       # how often every instance looks for revoked keys
      user_header: true               # may clients name an end user (x-tollway-user, `user`)
      mcp_aliases:                    # aliases whose calls get MCP tools, run server-side
        assistant: [time, docs]       # servers of the top-level mcp: section ("*": every alias)
      mcp_max_rounds: 8               # model rounds per request of such an alias

The core's ``ConfigFile`` keeps the section as a raw mapping (the gateway owns it, as
the budgets engine owns ``budgets:``); :func:`gateway_spec` validates it and reports
mistakes through ``settings.error`` so the message names the file and the line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tollway.core.errors import ConfigError

if TYPE_CHECKING:
    from tollway.core.config import TollwaySettings

__all__ = ["DEFAULT_MAX_BODY_BYTES", "GatewaySpec", "default_keys_path", "files_root",
           "gateway_spec"]

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
"""4 MiB: a long chat with a few images; larger bodies get 413."""


class GatewaySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    auth: Literal["keys", "none"] = "keys"
    keys: str | None = None
    admin_key_env: str | None = Field(default="TOLLWAY_ADMIN_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    budget_store: dict[str, Any] | str | None = None
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    files_dir: str | None = None
    """Where ``/v1/files`` uploads live (see :func:`files_root`)."""
    key_refresh_seconds: float = Field(default=0.25, gt=0, le=1.0)
    """At most 1 s: a revoked key must stop working everywhere within a second."""
    user_header: bool = True
    mcp_aliases: dict[str, list[str]] = Field(default_factory=dict)
    """Alias -> MCP servers (names from the ``mcp:`` section) whose tools a chat call to
    the alias gets, as far as the key's MCP grants allow; ``"*"`` means every alias."""
    mcp_max_rounds: int = Field(default=8, ge=1, le=64)

    def mcp_servers_for(self, alias: str) -> list[str]:
        """The MCP servers attached to ``alias`` (its own, then those of ``"*"``)."""
        names = list(self.mcp_aliases.get(alias, ()))
        names.extend(n for n in self.mcp_aliases.get("*", ()) if n not in names)
        return names

    def keys_target(self) -> str:
        """Where keys live: the configured path / URL, else ``$TOLLWAY_KEYS_DB``, else
        the per-user SQLite default."""
        return self.keys or os.environ.get("TOLLWAY_KEYS_DB") or str(default_keys_path())

    def admin_key(self) -> str | None:
        """The admin API key from the environment (None: the admin API is off)."""
        if not self.admin_key_env:
            return None
        return os.environ.get(self.admin_key_env) or None


def files_root(spec: GatewaySpec, ledger_target: Any) -> Path:
    """``files_dir`` when set; else ``<ledger>.files`` beside a SQLite ledger file (the
    gateway's other state is there); else the per-user data directory."""
    if spec.files_dir:
        return Path(spec.files_dir).expanduser()
    if isinstance(ledger_target, str) and "://" not in ledger_target \
            and ledger_target != ":memory:":
        return Path(ledger_target).expanduser().with_suffix(".files")
    return default_keys_path().parent / "files"


def default_keys_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tollway" / "keys.db"


def gateway_spec(settings: TollwaySettings | None) -> GatewaySpec:
    """The validated ``gateway:`` section (defaults when the file has none)."""
    raw = getattr(settings, "gateway", None) if settings is not None else None
    if raw is None:
        return GatewaySpec()
    try:
        return GatewaySpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ("gateway", *err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(GatewaySpec.model_fields)
            message = f"unknown key {err['loc'][-1]!r}; expected one of {allowed}"
        else:
            message = f"{err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})"
        if settings is not None and hasattr(settings, "error"):
            raise settings.error(loc, message) from None
        raise ConfigError(message, key=".".join(map(str, loc))) from None
