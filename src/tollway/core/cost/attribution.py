"""Who a call is for: org / project / user / key / tags, carried in a context variable.

``with attribute(org="acme", project="search"):`` (or ``async with``) scopes every model
call made inside it, however deep, with no parameter threading. Inner scopes EXTEND
outer ones: fields they set win, tags are merged. Asyncio tasks inherit the scope they
were created in (a ContextVar is copied into each task); a plain thread starts with an
EMPTY context, so hand work to threads through :func:`propagate` or
:class:`AttributedThreadPoolExecutor` (``asyncio.to_thread`` already copies the context).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar, Token, copy_context
from dataclasses import dataclass, field
from functools import wraps
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from tollway.core.cost.records import CallRecord

__all__ = [
    "FIELDS",
    "AttributedThreadPoolExecutor",
    "Attribution",
    "attribute",
    "current_attribution",
    "propagate",
]

FIELDS = ("org", "project", "user", "key", "framework", "agent", "node")
"""The named attribution fields (ledger columns); ``tags`` and ``extra`` come besides."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})

P = ParamSpec("P")
R = TypeVar("R")


def _tags(value: Mapping[str, Any] | Iterable[str] | None) -> dict[str, str]:
    """Tags as str -> str: a mapping, or strings ``"k=v"`` / bare ``"k"`` (-> "true")."""
    if not value:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, str):
        value = [value]
    out: dict[str, str] = {}
    for item in value:
        name, sep, tag_value = str(item).partition("=")
        out[name] = tag_value if sep else "true"
    return out


@dataclass(frozen=True, slots=True)
class Attribution:
    """An immutable set of attribution fields; unset fields are None (or empty)."""

    org: str | None = None
    project: str | None = None
    user: str | None = None
    key: str | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    framework: str | None = None
    agent: str | None = None
    node: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    """Other keys (``run_id``, ``task``...): recorded in the ledger's attribution JSON."""
    _as_dict: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)
    """:meth:`as_dict`'s answer, kept (the instance is immutable); callers get copies."""

    @classmethod
    def of(cls, fields: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Attribution:
        """Build from keyword fields; unknown keys go to ``extra``, None values are unset."""
        data = {**(fields or {}), **kwargs}
        named: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        tags: dict[str, str] = {}
        for name, value in data.items():
            if value is None:
                continue
            if name in FIELDS:
                named[name] = str(value)
            elif name == "tags":
                tags = _tags(value)
            elif name == "extra" and isinstance(value, Mapping):
                extra.update(value)
            else:
                extra[name] = value
        return cls(
            **named,
            tags=MappingProxyType(tags) if tags else _EMPTY,
            extra=MappingProxyType(extra) if extra else _EMPTY,
        )

    def merge(self, other: Attribution | Mapping[str, Any]) -> Attribution:
        """A new Attribution: ``other``'s set fields win, tags and extra are merged."""
        if not isinstance(other, Attribution):
            other = Attribution.of(other)
        if other is _EMPTY_ATTRIBUTION or not other:
            return self  # immutable: a Model's defaults outside any scope, without a copy
        named = {
            name: value if (value := getattr(other, name)) is not None else getattr(self, name)
            for name in FIELDS
        }
        tags = {**self.tags, **other.tags} if other.tags else self.tags
        extra = {**self.extra, **other.extra} if other.extra else self.extra
        return Attribution(
            **named,
            tags=MappingProxyType(dict(tags)) if other.tags else tags,
            extra=MappingProxyType(dict(extra)) if other.extra else extra,
        )

    def as_dict(self) -> dict[str, Any]:
        """The set fields only; ``extra`` keys are flattened in, so
        ``Attribution.of(a.as_dict()) == a``."""
        if self is _EMPTY_ATTRIBUTION:  # the common case outside any scope: no work
            return {}
        cached = self._as_dict
        if cached is not None:  # a Model's defaults are asked on every call
            return {**cached, "tags": dict(cached["tags"])} if "tags" in cached else dict(cached)
        out: dict[str, Any] = {
            name: value for name in FIELDS if (value := getattr(self, name)) is not None
        }
        if self.tags:
            out["tags"] = dict(self.tags)
        for name, value in self.extra.items():
            out.setdefault(name, value)
        object.__setattr__(self, "_as_dict", out)
        return {**out, "tags": dict(out["tags"])} if "tags" in out else dict(out)

    def fill(self, record: CallRecord) -> None:
        """Set the record's attribution columns from this scope (fields the scope leaves
        unset keep the record's value; tags and extra keys are merged in)."""
        for name in FIELDS:
            value = getattr(self, name)
            if value is not None:
                setattr(record, name, value)
        if self.tags:
            record.tags = {**record.tags, **self.tags}
        if self.extra:
            record.attribution = {**record.attribution, **self.extra}

    def __bool__(self) -> bool:
        return any(getattr(self, name) is not None for name in FIELDS) or bool(
            self.tags or self.extra
        )


_EMPTY_ATTRIBUTION = Attribution()
_current: ContextVar[Attribution] = ContextVar("tollway_attribution", default=_EMPTY_ATTRIBUTION)


def current_attribution() -> Attribution:
    """The attribution in force here (empty when no scope is open)."""
    return _current.get()


class attribute:  # named like a function: used as `with attribute(org=...)`
    """Scope calls to an org / project / user / key / tags (any other keyword goes to
    ``extra``). Works with ``with`` and ``async with``; nests, inner scopes extending
    outer ones. A None value leaves the outer value in place."""

    __slots__ = ("_attribution", "_tokens")

    def __init__(self, fields: Attribution | Mapping[str, Any] | None = None, /, **kwargs: Any):
        if isinstance(fields, Attribution):
            base = fields.merge(kwargs) if kwargs else fields
        else:
            base = Attribution.of(fields, **kwargs)
        self._attribution = base
        self._tokens: list[Token[Attribution]] = []

    def __enter__(self) -> Attribution:
        merged = _current.get().merge(self._attribution)
        self._tokens.append(_current.set(merged))
        return merged

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _current.reset(self._tokens.pop())

    async def __aenter__(self) -> Attribution:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def propagate(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` to run in a copy of the CURRENT context (attribution included), for
    handing work to a thread: ``Thread(target=propagate(work)).start()``. Each call of
    the wrapper runs in its own copy, so it may run in several threads at once."""
    context = copy_context()

    @wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.copy().run(fn, *args, **kwargs)

    return run


class AttributedThreadPoolExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose tasks run in the context of the code that submitted
    them, so attribution follows work into the pool (also via ``loop.run_in_executor``)."""

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        return super().submit(copy_context().run, fn, *args, **kwargs)
