"""The filter language of ``search(filters=...)`` and ``delete(filters=...)``.

A small subset of the MongoDB-style language that Chroma, OpenAI and Llama Stack all
understand in some form, so a filter means the same on every backend::

    {"lang": "en"}                                  # equality
    {"lang": {"$eq": "en"}}, {"lang": {"$ne": "en"}}
    {"lang": {"$in": ["en", "de"]}}                 # one of (str / number / bool)
    {"year": {"$gt": 2020}}   # also $gte, $lt, $lte: numbers only
    {"year": {"$gte": 2020, "$lt": 2025}}           # several operators: all must hold
    {"$and": [{...}, {...}]}, {"$or": [{...}, {...}]}
    {"lang": "en", "year": 2024}                    # several keys: all must hold

Keys are metadata keys (``source`` and ``chunk_index`` are always present). A chunk
without the key never matches a comparison (and ``$ne`` needs the key too).
:func:`parse_filter` checks a value and returns the canonical tree that backends
translate; anything outside the language raises :class:`BadFilterError` naming the path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from tollway.vectors.errors import BadFilterError

__all__ = ["All", "Any_", "Compare", "Filter", "matches", "parse_filter"]

Op: TypeAlias = Literal["eq", "ne", "in", "gt", "gte", "lt", "lte"]
Scalar: TypeAlias = str | int | float | bool

_OPS: dict[str, Op] = {"$eq": "eq", "$ne": "ne", "$in": "in", "$gt": "gt", "$gte": "gte",
                       "$lt": "lt", "$lte": "lte"}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")


@dataclass(slots=True, frozen=True)
class Compare:
    """``metadata[key] <op> value``; for ``in`` the value is a tuple of scalars."""

    key: str
    op: Op
    value: Scalar | tuple[Scalar, ...]


@dataclass(slots=True, frozen=True)
class All:
    """Every item holds (``$and`` and several keys in one object)."""

    items: tuple[Filter, ...]


@dataclass(slots=True, frozen=True)
class Any_:
    """At least one item holds (``$or``)."""

    items: tuple[Filter, ...]


Filter: TypeAlias = Compare | All | Any_


def parse_filter(value: Any, *, store: str | None = None) -> Filter | None:
    """Check ``value`` against the filter language and return its canonical tree
    (None for None or ``{}``: no filter)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadFilterError(f"a filter is a JSON object, got {type(value).__name__}",
                             store=store)
    if not value:
        return None
    return _node(value, "$", store)


def _node(value: Any, path: str, store: str | None) -> Filter:
    if not isinstance(value, dict) or not value:
        raise BadFilterError("expected a non-empty object", store=store, path=path)
    items: list[Filter] = []
    for key, sub in value.items():
        if not isinstance(key, str):
            raise BadFilterError("keys are strings", store=store, path=path)
        here = f"{path}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(sub, list) or not sub:
                raise BadFilterError(f"{key} takes a non-empty list of filters",
                                     store=store, path=here)
            parts = tuple(_node(s, f"{here}[{i}]", store) for i, s in enumerate(sub))
            items.append(All(parts) if key == "$and" else Any_(parts))
        elif key.startswith("$"):
            raise BadFilterError(
                f"unknown operator {key!r} (top level takes $and, $or or metadata keys)",
                store=store, path=here)
        else:
            if not _KEY.match(key):
                raise BadFilterError(
                    "a metadata key is letters, digits, '_', '.', '-' (at most 128)",
                    store=store, path=here)
            items.extend(_field(key, sub, here, store))
    return items[0] if len(items) == 1 else All(tuple(items))


def _field(key: str, sub: Any, path: str, store: str | None) -> list[Filter]:
    if not isinstance(sub, dict):
        return [Compare(key, "eq", _scalar(sub, path, store))]
    if not sub:
        raise BadFilterError("an empty operator object", store=store, path=path)
    out: list[Filter] = []
    for opname, operand in sub.items():
        op = _OPS.get(opname)
        where = f"{path}.{opname}"
        if op is None:
            raise BadFilterError(
                f"unknown operator {opname!r} (use one of {', '.join(_OPS)})",
                store=store, path=where)
        if op == "in":
            if not isinstance(operand, list) or not operand:
                raise BadFilterError("$in takes a non-empty list", store=store, path=where)
            out.append(Compare(key, op, tuple(_scalar(v, where, store) for v in operand)))
        elif op in ("gt", "gte", "lt", "lte"):
            if isinstance(operand, bool) or not isinstance(operand, int | float):
                raise BadFilterError(f"{opname} compares numbers, got {operand!r}",
                                     store=store, path=where)
            out.append(Compare(key, op, operand))
        else:
            out.append(Compare(key, op, _scalar(operand, where, store)))
    return out


def _scalar(value: Any, path: str, store: str | None) -> Scalar:
    if isinstance(value, str | int | float | bool):
        return value
    raise BadFilterError(f"values are strings, numbers or booleans, got {value!r}",
                         store=store, path=path)


def matches(flt: Filter | None, metadata: dict[str, Any]) -> bool:
    """Evaluate ``flt`` on one chunk's metadata (the reference semantics every backend's
    translation must agree with; the shared backend tests check it)."""
    if flt is None:
        return True
    if isinstance(flt, All):
        return all(matches(f, metadata) for f in flt.items)
    if isinstance(flt, Any_):
        return any(matches(f, metadata) for f in flt.items)
    if flt.key not in metadata:
        return False
    have = metadata[flt.key]
    if flt.op == "eq":
        return _same(have, flt.value)
    if flt.op == "ne":
        return not _same(have, flt.value)
    if flt.op == "in":
        assert isinstance(flt.value, tuple)
        return any(_same(have, v) for v in flt.value)
    if isinstance(have, bool) or not isinstance(have, int | float):
        return False
    v = flt.value
    assert isinstance(v, int | float)
    return {"gt": have > v, "gte": have >= v, "lt": have < v, "lte": have <= v}[flt.op]


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python; metadata equality keeps bools and numbers apart.
    return isinstance(a, bool) == isinstance(b, bool) and a == b
