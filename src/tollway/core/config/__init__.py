"""tollway.yaml -> validated settings, with errors that name the file, line and key.

One file configures everything (aliases and deployments, routing, fallbacks, budgets,
hours, ledger, prices, MCP servers), found at the path given in code, else
``$TOLLWAY_CONFIG``, else ``./tollway.yaml``. Loading keeps a key path -> line map from
YAML's node tree, so any part of tollway (this module, the budgets engine, the MCP
client) can report a mistake as ``tollway.yaml:14, key 'models.smart[0].api_key': ...``
through :meth:`TollwaySettings.error`.

A file is parsed and validated once per (path, mtime, size, the environment variables it
interpolates): building a Model is a ``stat`` and a dict lookup. When no file exists
nothing heavy is imported (pydantic and PyYAML load only with a config).
"""

from __future__ import annotations

import difflib
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, TypeVar, Union, get_args, get_origin

from tollway.core.errors import ConfigError

if TYPE_CHECKING:
    from tollway.core.config.schema import (
        ConfigFile,
        DeploymentSpec,
        FallbackSpec,
        RouterSpec,
    )

T = TypeVar("T")

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_FILE",
    "TollwaySettings",
    "config_path",
    "load_config",
]

CONFIG_ENV = "TOLLWAY_CONFIG"
DEFAULT_FILE = "tollway.yaml"

KeyPath = str | Sequence[str | int]
_Path = tuple[str | int, ...]


# --------------------------------------------------------------------------- discovery


def config_path(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to use: ``path``, else ``$TOLLWAY_CONFIG``, else ``./tollway.yaml``
    when it exists, else None. A path that was asked for but is missing is an error."""
    if path is not None:
        found = Path(path)
        if not found.is_file():
            raise ConfigError("no such config file (check the path given in code)", file=str(found))
        return found
    env = os.environ.get(CONFIG_ENV)
    if env:
        found = Path(env)
        if not found.is_file():
            raise ConfigError(
                f"{CONFIG_ENV} points to a file that does not exist: fix or unset {CONFIG_ENV}",
                file=env,
            )
        return found
    return Path(DEFAULT_FILE) if os.path.isfile(DEFAULT_FILE) else None


_cache: dict[str, tuple[int, int, tuple[tuple[str, str | None], ...], TollwaySettings]] = {}
_cache_lock = threading.Lock()


def load_config(path: str | os.PathLike[str] | None = None) -> TollwaySettings | None:
    """The validated settings from the config file (see :func:`config_path`), or None
    when there is none. Cached per (path, mtime, size, interpolated environment)."""
    found = config_path(path)
    if found is None:
        return None
    key = os.path.abspath(found)
    try:
        stat = os.stat(key)
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror}", file=str(found)) from None
    entry = _cache.get(key)
    if (
        entry is not None
        and entry[0] == stat.st_mtime_ns
        and entry[1] == stat.st_size
        and all(os.environ.get(name) == value for name, value in entry[2])
    ):
        return entry[3]
    with _cache_lock:
        try:
            text = Path(key).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the config file: {exc}", file=str(found)) from None
        settings = _load(text, source=str(found), path=Path(key))
        _cache[key] = (stat.st_mtime_ns, stat.st_size, settings._env, settings)
    return settings


# --------------------------------------------------------------------------- settings


class TollwaySettings:
    """The validated config. Sections owned by routing are typed (``models``,
    ``router``, ``fallbacks``); the others are the raw YAML values for their owners
    (``budgets``, ``hours``, ``rate_limits``, ``budget_store``, ``mcp``, ``prices``,
    ``attribution``), already environment-interpolated.

    Shared state built from the config (the guards with their budget stores, the
    PriceBook, the routers' health board) is kept here (:meth:`shared`) so every Model
    built from the same file shares it; ``core/assembly.py`` builds it.
    """

    def __init__(
        self,
        file: ConfigFile,
        *,
        source: str,
        path: Path | None = None,
        lines: Mapping[tuple[str, ...], int] | None = None,
        raw: Mapping[str, Any] | None = None,
        env: tuple[tuple[str, str | None], ...] = (),
    ) -> None:
        self.file = file
        self.source = source
        self.path = path
        self.raw: Mapping[str, Any] = raw or {}
        self.models: dict[str, tuple[DeploymentSpec, ...]] = {
            alias: tuple(deps) for alias, deps in file.models.items()
        }
        self.router: RouterSpec = file.router
        self.fallbacks: dict[str, tuple[FallbackSpec, ...]] = {
            alias: tuple(rules) for alias, rules in file.fallbacks.items()
        }
        self.budgets = file.budgets
        self.hours = file.hours
        self.rate_limits = file.rate_limits
        self.budget_store = file.budget_store
        self.prices: dict[str, dict[str, Any]] = file.prices
        self.mcp = file.mcp
        self.attribution = file.attribution
        self.gateway = file.gateway
        self.telemetry = file.telemetry
        self.vector_stores = file.vector_stores
        self._lines = dict(lines or {})
        self._env = env
        self._lock = threading.RLock()
        self._shared: dict[str, Any] = {}
        self.clock: Callable[[], float] | None = None
        """The clock budgets and allowed hours read (epoch seconds); None = real time.
        Set it before the first Model is built (tests, ``tollway demo``'s demo clock)."""

    def __repr__(self) -> str:
        return f"TollwaySettings({self.source!r}, aliases={list(self.models)})"

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> TollwaySettings:
        """Settings from a mapping with the same shape as the file (configs built in
        code and tests); ``${VAR}`` references are expanded the same way."""
        return _build(dict(data), source=source, path=None, lines={})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TollwaySettings:
        settings = load_config(path)
        assert settings is not None
        return settings

    # ------------------------------------------------------------------ error reporting

    def where(self, key_path: KeyPath) -> tuple[str, int | None]:
        """(file, line) of a key path such as ``"models.smart[0].api_key"`` or
        ``("budgets", 2, "limit")``; a key that is absent from the file (a missing
        field) reports the line of its nearest present parent."""
        return self.source, self._line(self._parts(key_path))

    def error(self, key_path: KeyPath, message: str) -> ConfigError:
        """A ConfigError naming the file, line and key: ``raise settings.error(...)``.
        ``message`` should say what was expected."""
        parts = self._parts(key_path)
        return ConfigError(
            message, file=self.source, line=self._line(parts), key=_display(parts) or None
        )

    def _parts(self, key_path: KeyPath) -> _Path:
        if not isinstance(key_path, str):
            return tuple(key_path)
        return _resolve_dotted(key_path, self._lines)

    def _line(self, parts: _Path) -> int | None:
        lines = self._lines
        key = tuple(str(p) for p in parts)
        while key:
            line = lines.get(key)
            if line is not None:
                return line
            key = key[:-1]
        return 1 if lines else None

    # ------------------------------------------------------------------ derived views

    @property
    def aliases(self) -> list[str]:
        return list(self.models)

    @property
    def ledger_target(self) -> str | bool | None:
        """What to hand the Model as ``ledger``: False (off), a target string, or None
        (the default ledger)."""
        spec = self.file.ledger
        if spec is None or spec is True:
            return None
        if spec is False:
            return False
        if isinstance(spec, str):
            return spec
        if not spec.enabled:
            return False
        return spec.url

    def deployment_names(self, alias: str) -> tuple[str, ...]:
        """The name of each deployment of ``alias``, in file order: its ``name:``, else
        its ``provider/model`` (``#2``, ``#3``... for repeats within the alias). The
        ledger, per-deployment prices and the router all know a deployment by it."""
        names: list[str] = []
        taken: set[str] = set()
        for spec in self.models[alias]:
            name = spec.name or _unique(spec.model, taken)
            taken.add(name)
            names.append(name)
        return tuple(names)

    def price_overrides(self) -> dict[str, dict[str, Any]]:
        """``prices:`` plus every deployment's ``price:``, keyed by the deployment's name
        (:meth:`deployment_names`: two deployments of one model are priced apart even
        without ``name:``); a deployment's own price wins."""
        overrides = {key: dict(value) for key, value in self.prices.items()}
        for alias, deployments in self.models.items():
            for name, dep in zip(self.deployment_names(alias), deployments, strict=True):
                if dep.price is not None:
                    overrides[name] = dict(dep.price)
        return overrides

    def shared(self, name: str, build: Callable[[], T]) -> T:
        """The object ``name`` built from this config, built once by ``build`` (guards
        with their stores, the price book, the health board, built Deployments): every
        Model made from the same settings shares it. ``core/assembly.py`` builds them."""
        try:
            return self._shared[name]
        except KeyError:
            pass
        with self._lock:
            if name not in self._shared:
                self._shared[name] = build()
            return self._shared[name]


# --------------------------------------------------------------------------- loading


def _load(text: str, *, source: str, path: Path | None) -> TollwaySettings:
    data, lines = _parse_yaml(text, source)
    if data is None:
        data = {}
    return _build(data, source=source, path=path, lines=lines)


def _build(
    data: Any, *, source: str, path: Path | None, lines: Mapping[tuple[str, ...], int]
) -> TollwaySettings:
    from pydantic import ValidationError

    from tollway.core.config.schema import ConfigFile

    locator = TollwaySettings.__new__(TollwaySettings)
    locator.source, locator._lines = source, dict(lines)
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping of sections (models:, router:, fallbacks:, budgets: ...) "
            f"at the top level, got {_kind(data)}",
            file=source, line=1 if lines else None,
        )
    env: dict[str, str | None] = {}
    data = _interpolate(_fix_fallback_keys(data), (), env, locator)
    try:
        file = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, data, locator) from None
    settings = TollwaySettings(
        file, source=source, path=path, lines=lines, raw=data, env=tuple(sorted(env.items()))
    )
    _cross_check(settings)
    return settings


def _fix_fallback_keys(data: dict[str, Any]) -> dict[str, Any]:
    """Turn YAML's ``on`` -> True key back into ``on`` in fallback rules before anything
    reads them, so error paths match what the user wrote."""
    from tollway.core.config.schema import fix_on_key

    section = data.get("fallbacks")
    if not isinstance(section, dict):
        return data
    fixed: dict[Any, Any] = {}
    for alias, rules in section.items():
        if isinstance(rules, list):
            fixed[alias] = [fix_on_key(rule) for rule in rules]
        else:
            fixed[alias] = fix_on_key(rules)
    return {**data, "fallbacks": fixed}


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _check_duplicates(node, (), source)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and "scanning" in exc.context and exc.context_mark is not None:
            # An unclosed quote or the like: the problem is where the scalar started,
            # not where the scanner gave up (often the end of the file).
            problem = f"{exc.context}: {problem}"
            if exc.problem_mark is not None:
                problem += f" at line {exc.problem_mark.line + 1}"
            mark = exc.context_mark
        line = mark.line + 1 if mark is not None else None
        near = _key_near(text, line) if line else None
        raise ConfigError(
            f"invalid YAML: {problem}"
            + (f" (column {mark.column + 1})" if mark is not None else "")
            + "; check the indentation, colons and quotes on this line or the one before",
            file=source, line=line, key=near,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=source) from None
    finally:
        loader.dispose()
    lines: dict[tuple[str, ...], int] = {}
    _map_lines(node, (), lines, set())
    return data, lines


def _map_lines(node: Any, path: tuple[str, ...], lines: dict[tuple[str, ...], int],
               stack: set[int]) -> None:
    import yaml

    if id(node) in stack:  # a recursive alias
        return
    stack.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                child = (*path, str(key_node.value))
                lines[child] = key_node.start_mark.line + 1
                _map_lines(value_node, child, lines, stack)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, str(index))
            lines[child] = item.start_mark.line + 1
            _map_lines(item, child, lines, stack)
    stack.discard(id(node))


def _check_duplicates(node: Any, path: tuple[str, ...], source: str) -> None:
    """YAML keeps the last of two equal keys silently; a config must not."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                name = str(key_node.value)
                line = key_node.start_mark.line + 1
                if name in seen:
                    raise ConfigError(
                        f"duplicate key {name!r} (first at line {seen[name]}); YAML would "
                        "silently keep only the last one: remove or merge them",
                        file=source, line=line, key=_display((*path, name)),
                    )
                seen[name] = line
                _check_duplicates(value_node, (*path, name), source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicates(item, (*path, str(index)), source)


_KEY_LINE = re.compile(r"^(\s*)(-\s+)?('[^']*'|\"[^\"]*\"|[^\s:#'\"-][^:#]*?)\s*:(?:\s|$)")


def _key_near(text: str, line: int) -> str | None:
    """The key path at or above a line that failed to parse (best effort, from the
    indentation): a syntax error still names the key it is in."""
    rows = text.splitlines()
    index = min(line, len(rows)) - 1
    path: list[str] = []
    indent: int | None = None
    while index >= 0:
        match = _KEY_LINE.match(rows[index])
        if match:
            lead = len(match.group(1)) + len(match.group(2) or "")
            if indent is None or lead < indent:
                path.append(match.group(3).strip("'\""))
                indent = lead
                if lead == 0:
                    break
        index -= 1
    return ".".join(reversed(path)) or None


# --------------------------------------------------------------------------- ${VAR}


_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _interpolate(value: Any, path: _Path, env: dict[str, str | None],
                 locator: TollwaySettings) -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in every string value (``$${`` is a
    literal ``${``). A missing variable without a default is an error naming it."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        return _REF.sub(lambda m: _substitute(m, path, env, locator), value)
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), env, locator) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), env, locator) for i, v in enumerate(value)]
    return value


def _substitute(match: re.Match[str], path: _Path, env: dict[str, str | None],
                locator: TollwaySettings) -> str:
    token = match.group(0)
    if token == "$${":
        return "${"
    body = match.group(1)
    if body is None:
        raise locator.error(path, "unclosed '${': write ${VAR} or ${VAR:-default} (or $${ for "
                                  "a literal '${')")
    name, sep, default = body.partition(":-")
    if not _NAME.fullmatch(name):
        raise locator.error(
            path, f"'${{{body}}}' is not an environment reference: expected ${{VAR}} or "
                  "${VAR:-default} with VAR made of letters, digits and underscores"
        )
    value = os.environ.get(name)
    env[name] = value
    if value is None or (sep and value == ""):
        if sep:
            return default
        raise locator.error(
            path, f"environment variable {name} is not set (referenced as ${{{name}}}): set "
                  f"it, or give a default with ${{{name}:-value}}"
        )
    return value


# --------------------------------------------------------------------------- validation errors


def _explain(exc: Any, data: Any, locator: TollwaySettings) -> ConfigError:
    """The pydantic error that matters most, as one ConfigError with file and line."""
    groups: dict[_Path, list[dict[str, Any]]] = {}
    for err in exc.errors(include_url=False):
        groups.setdefault(_data_path(err["loc"], data, err["type"]), []).append(err)
    # An error whose path another error extends is that error's union alternative
    # ("not a number" beside "unknown key 'conect'"): keep the deeper explanation.
    keep = [p for p in groups if not any(q != p and q[: len(p)] == p for q in groups)]
    keep.sort(key=lambda p: locator._line(p) or 0)
    path = keep[0]
    message = _describe(path, groups[path])
    if len(keep) > 1:
        message += f" ({len(keep) - 1} more problem(s) in this config after this one)"
    return locator.error(path, message)


def _data_path(loc: Sequence[Any], data: Any, kind: str) -> _Path:
    """Pydantic's location mapped onto the data the user wrote: union tags and the
    shapes added by shorthands are not keys in the file."""
    path: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        present = (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        )
        if present:
            path.append(part)
            current = current[part]
        elif index == len(loc) - 1 and kind == "missing" and isinstance(current, dict):
            path.append(part)
    return tuple(path)


_SECRET_KEYS = ("api_key", "headers", "key", "token", "secret", "password")


def _describe(path: _Path, errs: list[dict[str, Any]]) -> str:
    from tollway.core.config.schema import EXPECTED

    err = errs[0]
    kind = err["type"]
    field = next((str(p) for p in reversed(path) if isinstance(p, str)), "")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(tuple(err["loc"][:-1]))
        close = difflib.get_close_matches(field, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {field!r}{hint}; expected one of: {', '.join(allowed)}"
    if kind == "missing":
        return f"missing required key {field!r}"
    if kind.startswith("value_error") or kind == "assertion_error":
        return str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if len(errs) > 1 or field in EXPECTED:
        expected = EXPECTED.get(field) or " or ".join(
            dict.fromkeys(_expectation(e["msg"]) for e in errs)
        )
    else:
        expected = _expectation(err["msg"])
    secret = any(str(p).lower() in _SECRET_KEYS for p in path)
    got = "" if secret else f", got {_show(err.get('input'))}"
    return f"expected {expected}{got}"


def _expectation(msg: str) -> str:
    text = msg.removeprefix("Input should be ").split(", unable to parse", 1)[0]
    return text.replace("a valid dictionary", "a mapping").replace("a valid list", "a list")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number",
            bool: "a boolean"}.get(type(value), type(value).__name__)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    from pydantic import BaseModel

    from tollway.core.config.schema import ConfigFile

    current: Any = ConfigFile
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    for arg in get_args(current):  # an optional section: the model inside
        arg = _unwrap(arg)
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return list(arg.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is not None and hasattr(tp, "__metadata__"):
        tp = get_args(tp)[0]
    return tp


def _step(tp: Any, part: Any) -> Any:
    from pydantic import BaseModel

    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(part) if isinstance(part, str) else None
        return field.annotation if field is not None else None
    origin = get_origin(tp)
    if origin in (Union, UnionType):
        members = [_unwrap(a) for a in get_args(tp)]
        for member in members:
            if getattr(member, "__name__", None) == part:  # pydantic's union tag
                return member
        for member in members:
            found = _step(member, part)
            if found is not None:
                return found
        return None
    if origin in (list, tuple):
        return get_args(tp)[0] if isinstance(part, int) else None
    if origin is dict:
        return get_args(tp)[1]
    return None


def _cross_check(settings: TollwaySettings) -> None:
    """What one section says about another: fallbacks name defined aliases, names are
    unique, price overrides are valid prices."""
    aliases = settings.models
    known = ", ".join(aliases) or "none"
    for alias, rules in settings.fallbacks.items():
        if alias not in aliases:
            raise settings.error(
                ("fallbacks", alias),
                f"fallbacks for {alias!r}, which is not an alias under 'models:' (defined: {known})",
            )
        for index, rule in enumerate(rules):
            where = _written(settings.raw, ("fallbacks", alias, index, "to"))
            if rule.to not in aliases:
                raise settings.error(
                    where,
                    f"fallback to {rule.to!r}, which is not an alias under 'models:' "
                    f"(defined: {known})",
                )
            if rule.to == alias:
                raise settings.error(
                    where,
                    f"alias {alias!r} falls back to itself; expected another alias",
                )
    if isinstance(settings.hours, list):  # a reroute must land on a defined alias
        for index, rule in enumerate(settings.hours):
            target = rule.get("to") if isinstance(rule, dict) else None
            if isinstance(target, str) and target not in aliases:
                raise settings.error(
                    ("hours", index, "to"),
                    f"reroute to {target!r}, which is not an alias under 'models:' "
                    f"(defined: {known})",
                )
    for alias, deps in aliases.items():
        seen: dict[str, int] = {}
        for index, dep in enumerate(deps):
            if dep.name is None:
                continue
            if dep.name in seen:
                raise settings.error(
                    ("models", alias, index, "name"),
                    f"deployment name {dep.name!r} is already used by deployment "
                    f"{seen[dep.name]} of {alias!r}; names must be unique within an alias",
                )
            seen[dep.name] = index
    priced: dict[str, tuple[str, dict[str, Any]]] = {}
    for alias, deps in aliases.items():
        for index, (name, dep) in enumerate(zip(settings.deployment_names(alias), deps, strict=True)):
            if dep.price is None:
                continue
            other = priced.get(name)
            if other is not None and other[1] != dep.price:
                raise settings.error(
                    ("models", alias, index, "price"),
                    f"deployment {name!r} is also under alias {other[0]!r} with another "
                    "price; prices are kept per deployment name, so give one of them its "
                    "own 'name:'",
                )
            priced.setdefault(name, (alias, dep.price))
    _check_prices(settings)


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}#{n}" in taken:
        n += 1
    return f"{name}#{n}"


def _written(data: Any, path: _Path) -> _Path:
    """The longest prefix of ``path`` the user actually wrote (shorthands like
    ``smart: [cheap]`` have no ``to`` key to point at)."""
    out: list[str | int] = []
    for part in path:
        present = (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        )
        if not present:
            break
        out.append(part)
        data = data[part]
    return tuple(out)


def _check_prices(settings: TollwaySettings) -> None:
    try:
        from tollway.core.cost.pricing import PriceBook
    except ImportError:
        return
    entries: list[tuple[_Path, str, dict[str, Any]]] = [
        (("prices", key), key, value) for key, value in settings.prices.items()
    ]
    for alias, deps in settings.models.items():
        for index, dep in enumerate(deps):
            if dep.price is not None:
                entries.append((("models", alias, index, "price"), dep.model, dep.price))
    for path, key, value in entries:
        try:
            PriceBook({key: value})
        except ConfigError as exc:
            message = str(exc).removeprefix(f"key '{exc.key}': ") if exc.key else str(exc)
            inner = (exc.key or "").removeprefix(f"prices.{key}")
            rest = tuple(p for p in inner.split(".") if p)
            raise settings.error((*path, *rest), message) from None


# --------------------------------------------------------------------------- key paths


def _display(parts: Sequence[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit() and out):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_TOKEN = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _resolve_dotted(text: str, lines: Mapping[tuple[str, ...], int]) -> _Path:
    """``"prices.openai/gpt-4.1.input"`` -> ("prices", "openai/gpt-4.1", "input"): dots
    inside keys (model names) are resolved against the keys the file really has."""
    tokens: list[str | int] = [
        int(m.group(1)) if m.group(1) is not None else m.group(2) for m in _TOKEN.finditer(text)
    ]
    parts: list[str | int] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if isinstance(token, int):
            parts.append(token)
            i += 1
            continue
        prefix = tuple(str(p) for p in parts)
        for j in range(len(tokens), i, -1):
            chunk = tokens[i:j]
            if any(isinstance(t, int) for t in chunk):
                continue
            candidate = ".".join(str(t) for t in chunk)
            if (*prefix, candidate) in lines:
                parts.append(candidate)
                i = j
                break
        else:
            parts.append(token)
            i += 1
    return tuple(parts)


def iter_deployments(settings: TollwaySettings) -> Iterator[tuple[str, int, DeploymentSpec]]:
    """(alias, index, spec) for every deployment, in file order."""
    for alias, deps in settings.models.items():
        for index, dep in enumerate(deps):
            yield alias, index, dep
