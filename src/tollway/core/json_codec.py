"""JSON on the hot path (request bodies out, answers and stream events in, the
gateway's bodies both ways): orjson when it is installed, the standard library else.

Why: measured here on the benchmark's 400-byte completion, ``json.loads`` takes 5.7 µs
and orjson 1.5; a request body's ``json.dumps`` 3.8 µs and orjson 0.2: about 8 µs of
every call, of the 40 µs a call may add in all (DESIGN.md, performance budgets).

Where the two differ, the standard library decides, so what a call accepts and the
errors it raises stay the same:
- text orjson refuses (``NaN`` / ``Infinity`` literals, numbers beyond a float's range,
  lone surrogates, a byte-order mark, and invalid JSON) is read again by ``json.loads``,
  whose ``JSONDecodeError`` (message, position) is what callers see;
- values orjson will not write (integers beyond 64 bits, subclasses of str / int / dict
  / list such as enums, objects of other types) are written by ``json.dumps``.
Two differences stay: orjson reads integers beyond 64 bits as floats (no token count,
id or seed a provider sends comes near that), and writes NaN and infinities as
``null`` (``json.dumps`` writes ``NaN``, which no JSON parser of a provider reads).

orjson is imported on first use, never by ``import tollway``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dumps", "loads"]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""One encoder: ``json.dumps`` with options builds a new one per call."""

_fast: Any = None
"""The orjson module, False when it is not installed, None before the first use."""
_OPTIONS = 0


def _load_fast() -> Any:
    global _fast, _OPTIONS
    try:
        import orjson
    except ImportError:
        _fast = False
        return False
    _OPTIONS = (orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS
                | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME)
    _fast = orjson
    return orjson


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON (non-ASCII text as it is, not escaped)."""
    fast = _fast if _fast is not None else _load_fast()
    if fast:
        try:
            return fast.dumps(value, option=_OPTIONS)
        except TypeError:  # a type orjson leaves to the standard library
            pass
    return _ENCODER.encode(value).encode("utf-8")


def loads(data: bytes | str) -> Any:
    """The value of JSON text; ``json.JSONDecodeError`` (a ValueError) when it is not
    JSON, exactly as ``json.loads`` raises it."""
    fast = _fast if _fast is not None else _load_fast()
    if fast:
        try:
            return fast.loads(data)
        except ValueError:  # orjson.JSONDecodeError; the standard library decides
            pass
    return json.loads(data)
