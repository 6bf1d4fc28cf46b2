"""Opening stores by name: a ledger target or a budget_store spec -> the backend.

The one place that names every backend, above the contracts they implement
(``cost/ledger.py``, ``cost/budgets/contract.py``) and the backends themselves, so no
contract module imports its implementations.

Ledger targets:

- ``None``: the default SQLite file: ``$TOLLWAY_LEDGER`` if set, else
  ``$XDG_DATA_HOME/tollway/ledger.db`` or ``~/.local/share/tollway/ledger.db``;
- a path or ``sqlite:///path`` (``?synchronous=full`` for power-loss durability);
- ``memory`` / ``:memory:``: an in-memory SQLite ledger (one process, gone at exit);
- ``postgresql://...`` (``?schema=NAME``, default ``tollway``).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tollway.core.cost.budgets.contract import BudgetStore
from tollway.core.cost.ledger import Ledger
from tollway.core.errors import ConfigError

__all__ = [
    "budget_store_plan",
    "default_ledger_path",
    "existing_shared_ledger",
    "open_budget_store",
    "open_ledger",
    "shared_ledger",
    "sqlite_ledger_file",
]


_IN_MEMORY = ("memory", ":memory:", "sqlite://", "sqlite:///:memory:")


def default_ledger_path() -> Path:
    """``$TOLLWAY_LEDGER``, else ``$XDG_DATA_HOME/tollway/ledger.db``, else
    ``~/.local/share/tollway/ledger.db``."""
    env = os.environ.get("TOLLWAY_LEDGER")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "tollway" / "ledger.db"


def open_ledger(target: str | os.PathLike[str] | Ledger | None = None) -> Ledger:
    """The ledger named by ``target`` (see the module docstring). A Ledger passes through."""
    if target is not None and not isinstance(target, (str, os.PathLike)):
        if isinstance(target, Ledger):
            return target
        raise ConfigError(
            f"a ledger target must be a path, a URL or None; got {type(target).__name__}",
            key="ledger",
        )
    if target is None:
        env = os.environ.get("TOLLWAY_LEDGER")
        if env and "://" in env:
            return open_ledger(env)
        from tollway.core.stores.sqlite_ledger import SQLiteLedger

        return SQLiteLedger(default_ledger_path())
    text = os.fspath(target)
    if text.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from tollway.core.stores.postgres_ledger import PostgresLedger

        return PostgresLedger(text.replace("postgresql+psycopg://", "postgresql://", 1))
    from tollway.core.stores.sqlite_ledger import SQLiteLedger

    if text in _IN_MEMORY:
        return SQLiteLedger(":memory:")
    if text.startswith("sqlite:"):
        return SQLiteLedger.from_url(text)
    if "://" in text:
        raise ConfigError(
            f"unknown ledger URL scheme in {text.split('://', 1)[0]!r}: use a file path, "
            "sqlite:///path, postgresql://... or memory",
            key="ledger",
        )
    return SQLiteLedger(Path(text).expanduser())


_SHARED: dict[str, Ledger] = {}
_SHARED_LOCK = threading.Lock()


def _shared_key(target: str | os.PathLike[str] | None) -> str:
    """What identifies a shared ledger: a URL as given, a file by its absolute path (a
    relative path names another file once the working directory changes)."""
    if target is None:
        return os.environ.get("TOLLWAY_LEDGER") or str(default_ledger_path())
    text = os.fspath(target)
    if "://" in text or text in _IN_MEMORY:
        return text
    return os.path.abspath(os.path.expanduser(text))


def shared_ledger(target: str | os.PathLike[str] | None = None) -> Ledger:
    """One ledger per target for the whole process (every Model writing to the same
    file or database shares its connection); closed at interpreter exit."""
    key = _shared_key(target)
    ledger = _SHARED.get(key)
    if ledger is not None:
        return ledger
    with _SHARED_LOCK:
        ledger = _SHARED.get(key)
        if ledger is None:
            ledger = open_ledger(target)
            _SHARED[key] = ledger
        return ledger


def existing_shared_ledger(target: str | os.PathLike[str] | None = None) -> Ledger | None:
    """The process's shared ledger for ``target`` if a Model (or MCP client) of this
    process already opened it, else None. Readers use it so they see what this process
    wrote, an in-memory ledger included, without opening one that stays open."""
    return _SHARED.get(_shared_key(target))


@atexit.register
def _close_shared() -> None:
    for ledger in list(_SHARED.values()):
        try:
            ledger.close()
        except Exception:  # best effort at exit
            pass
    _SHARED.clear()


def sqlite_ledger_file(target: str | os.PathLike[str] | bool | None) -> Path | None:
    """The SQLite file a ledger target writes to (None: an in-memory, PostgreSQL or
    disabled ledger). ``None`` / ``True`` name the default ledger."""
    if target is False:
        return None
    if target is None or target is True:
        env = os.environ.get("TOLLWAY_LEDGER")
        if env and "://" in env:
            return sqlite_ledger_file(env)
        return default_ledger_path()
    text = os.fspath(target)
    if text in ("memory", ":memory:", "sqlite://", "sqlite:///:memory:"):
        return None
    if text.startswith("sqlite:"):
        from tollway.core.stores.sqlite_ledger import SQLiteLedger

        path = SQLiteLedger.url_path(text)
        return None if path == ":memory:" else Path(path).expanduser()
    if "://" in text:
        return None
    return Path(text).expanduser()


def _default_store_path(ledger: str | os.PathLike[str] | bool | None = None) -> Path:
    """``$TOLLWAY_BUDGETS_DB``, else the file of the SQLite ledger the counters belong
    with (so settle and ledger row are one transaction), else the default ledger file."""
    env = os.environ.get("TOLLWAY_BUDGETS_DB")
    if env:
        return Path(env)
    return sqlite_ledger_file(ledger) or default_ledger_path()


_STORE_OPTIONS = {"backend", "path", "url", "prefix", "schema", "busy_timeout",
                  "synchronous_commit", "pool_size", "pool_timeout"}
GUARD_OPTIONS = {"reservation_ttl", "default_max_output_tokens"}


def budget_store_plan(spec: Mapping[str, Any] | str | None = None) -> tuple[str, dict[str, Any]]:
    """``(backend, options)`` of a budget_store spec, validated without opening anything
    (``tollway check-config`` and :func:`open_budget_store` share it): a string is the
    short form (``memory``, a SQLite path, ``redis://...``, ``postgresql://...``)."""
    if spec is None or isinstance(spec, str):
        text = spec or ""
        if text in ("memory", ":memory:"):
            spec = {"backend": "memory"}
        elif text.startswith(("redis://", "rediss://", "unix://")):
            spec = {"backend": "redis", "url": text}
        elif text.startswith(("postgres://", "postgresql://")):
            spec = {"backend": "postgres", "url": text}
        else:
            spec = {"backend": "sqlite", "path": text.removeprefix("sqlite:///") or None}
    options = {k: v for k, v in spec.items() if k not in GUARD_OPTIONS}
    backend = str(options.pop("backend", None) or ("sqlite" if "path" in options else "memory"))
    unknown = set(options) - _STORE_OPTIONS
    if unknown:
        raise ConfigError(
            f"unknown budget_store option(s) {', '.join(sorted(unknown))}; expected "
            f"{', '.join(sorted(_STORE_OPTIONS | GUARD_OPTIONS))}",
            key="budget_store",
        )
    if backend == "postgresql":
        backend = "postgres"
    if backend not in ("memory", "sqlite", "redis", "postgres"):
        raise ConfigError(
            f"unknown budget_store backend {backend!r}; expected memory, sqlite, redis or "
            "postgres",
            key="budget_store.backend",
        )
    if backend in ("redis", "postgres") and not options.get("url"):
        example = "redis://host:6379/0" if backend == "redis" else "postgresql://..."
        raise ConfigError(f"the {backend} budget store needs 'url: {example}'",
                          key="budget_store.url")
    return backend, options


def open_budget_store(
    spec: Mapping[str, Any] | str | None = None, *,
    ledger: str | os.PathLike[str] | bool | None = None,
) -> BudgetStore:
    """A store from its config: ``{backend: memory | sqlite | redis | postgres, ...}``
    (``path`` and ``busy_timeout`` for sqlite, ``url`` for redis / postgres, ``prefix``
    for redis, ``schema``, ``synchronous_commit``, ``pool_size`` and ``pool_timeout``
    for postgres), or a string:
    ``memory``, a SQLite path, ``redis://...``, ``postgresql://...``. None, or sqlite
    without a path: the SQLite file ``$TOLLWAY_BUDGETS_DB``, else the file of the SQLite
    ``ledger`` target the counters go with (the default ledger's when None): one file,
    so a call's settle and its ledger row are one transaction, shared by every process
    on the machine."""
    backend, options = budget_store_plan(spec)
    if backend == "memory":
        from tollway.core.cost.budgets.memory import MemoryBudgetStore

        return MemoryBudgetStore()
    if backend == "sqlite":
        from tollway.core.stores.sqlite_budgets import SQLiteBudgetStore

        path = options.get("path") or _default_store_path(ledger)
        kw = {"busy_timeout": float(options["busy_timeout"])} if "busy_timeout" in options else {}
        return SQLiteBudgetStore(path, **kw)
    if backend == "redis":
        from tollway.core.stores.redis_budgets import RedisBudgetStore

        prefix = str(options["prefix"]) if options.get("prefix") else None
        if prefix is None:
            return RedisBudgetStore(str(options["url"]))
        return RedisBudgetStore(str(options["url"]), prefix=prefix)
    from tollway.core.stores.postgres_budgets import PostgresBudgetStore

    pg_kw: dict[str, Any] = {}
    if options.get("schema"):
        pg_kw["schema"] = str(options["schema"])
    if "synchronous_commit" in options:
        pg_kw["synchronous_commit"] = bool(options["synchronous_commit"])
    for name in ("pool_size", "pool_timeout"):
        if name in options:
            pg_kw[name] = options[name]
    return PostgresBudgetStore(str(options["url"]), **pg_kw)
