"""A :class:`~tollway.vectors.filters.Filter` as a SQLite WHERE clause over the JSON
``metadata`` column (``json_extract`` / ``json_type``), with bound parameters only."""

from __future__ import annotations

from typing import Any

from tollway.vectors.filters import All, Any_, Compare, Filter

__all__ = ["where_sql"]

_CMP = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def where_sql(flt: Filter | None) -> tuple[str, list[Any]]:
    """``(sql, params)``; ``("1", [])`` for no filter. Types are compared like
    :func:`~tollway.vectors.filters.matches`: booleans never equal numbers, a missing
    key never matches."""
    if flt is None:
        return "1", []
    params: list[Any] = []
    return _sql(flt, params), params


def _sql(flt: Filter, params: list[Any]) -> str:
    if isinstance(flt, All):
        return "(" + " AND ".join(_sql(f, params) for f in flt.items) + ")"
    if isinstance(flt, Any_):
        return "(" + " OR ".join(_sql(f, params) for f in flt.items) + ")"
    return _compare(flt, params)


def _compare(c: Compare, params: list[Any]) -> str:
    path = "$." + '"' + c.key.replace('"', '""') + '"'
    if c.op in _CMP:
        params.extend([path, path, c.value])
        return (f"(json_type(metadata, ?) IN ('integer', 'real') AND "
                f"json_extract(metadata, ?) {_CMP[c.op]} ?)")
    values = c.value if isinstance(c.value, tuple) else (c.value,)
    if c.op == "ne":
        params.append(path)  # its placeholder comes first
    parts = [_equal(path, v, params) for v in values]
    eq = "(" + " OR ".join(parts) + ")"
    if c.op == "ne":
        return f"(json_type(metadata, ?) IS NOT NULL AND NOT {eq})"
    return eq


def _equal(path: str, value: Any, params: list[Any]) -> str:
    if isinstance(value, bool):
        params.extend([path, "true" if value else "false"])
        return "(json_type(metadata, ?) = ?)"
    if isinstance(value, int | float):
        params.extend([path, path, value])
        return ("(json_type(metadata, ?) IN ('integer', 'real') AND "
                "json_extract(metadata, ?) = ?)")
    params.extend([path, path, value])
    return "(json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?)"
