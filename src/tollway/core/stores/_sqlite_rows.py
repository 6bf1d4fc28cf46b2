"""The SQLite ledger's INSERT of one row, in a module of its own: the ledger, the budget
store's settle and the spool's batches all write rows, and none of them should need the
others to do it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from tollway.core.cost.ledger import COLUMNS, row_values

if TYPE_CHECKING:
    from tollway.core.cost.records import CallRecord

__all__ = ["COLUMN_LIST", "INSERT_ROW", "TABLE", "insert_row", "insert_values"]

TABLE = "calls"
COLUMN_LIST = ", ".join(f'"{c.name}"' for c in COLUMNS)
INSERT_ROW = (
    f'INSERT INTO "{TABLE}" ({COLUMN_LIST}) VALUES ({", ".join("?" for _ in COLUMNS)})'
)
"""The statement that writes one row with every value bound (``row_values(row,
text_time=True)``); :func:`insert_row` is what the stores run."""

_INSERTS: dict[tuple[type, ...], tuple[str, Callable[[Sequence[Any]], Any]]] = {}
"""(INSERT, parameter picker) by the value types of a row: the types say which values
are NULL, and a process sees a handful of combinations."""
_MAX_INSERTS = 64


def insert_row(row: CallRecord) -> tuple[str, Sequence[Any]]:
    """The INSERT of ``row`` and its parameters, its NULL values written as ``NULL``
    literals instead of bound: CPython's sqlite3 binds ``None`` through its adapter
    lookup (two failed attribute lookups, ~3,000 instructions each), and a typical row
    has 16 of them. Same columns, same stored values; the SQLite budget store runs it
    inside its settle transaction when it shares the ledger's file."""
    return insert_values(row_values(row, text_time=True))


def insert_values(values: Sequence[Any]) -> tuple[str, Sequence[Any]]:
    """:func:`insert_row` for a row's column values (``row_values(row, text_time=True)``,
    as the SQLite budget store's spool keeps them)."""
    key = tuple(map(type, values))
    known = _INSERTS.get(key)
    if known is None:
        present = [i for i, v in enumerate(values) if v is not None]
        marks = ", ".join("?" if v is not None else "NULL" for v in values)
        sql = f'INSERT INTO "{TABLE}" ({COLUMN_LIST}) VALUES ({marks})'
        known = (sql, itemgetter(*present))  # a row has several NOT NULL columns: a tuple
        if len(_INSERTS) < _MAX_INSERTS:
            _INSERTS[key] = known
    sql, pick = known
    return sql, pick(values)


