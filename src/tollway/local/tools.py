"""Tool calls for a local model: a JSON schema to force them, a lenient parser to find them.

A local model has no tool-call channel: it writes text. Two cases:

- ``tool_choice`` is ``required`` or names a tool: generation is constrained by a grammar
  built from :func:`forced_call_schema`, so the output IS a call (``{"name": ...,
  "arguments": {...}}`` with the arguments of that tool's own schema), and
  :func:`parse_forced_calls` reads it.
- ``tool_choice`` is ``auto``: the model writes freely, and :func:`parse_tool_calls`
  finds the calls in whatever shape a small model writes them: Qwen's
  ``<tool_call>{...}</tool_call>`` blocks, a bare JSON object, or a fenced ```json block;
  ``arguments`` may be an object or a JSON string, ``parameters`` is accepted for it.
  :class:`ToolCallSplitter` does the same on a stream: text is passed on as it comes
  until a call may be starting, the rest is held for the parser.
- ``tool_choice`` auto with a JSON-schema response format: the grammar of
  :func:`call_or_answer_schema` admits a call or an answer in that format.

Pure functions over strings and dicts (no llama.cpp here), so every shape is unit-tested.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "OPEN_TAG",
    "ParsedCall",
    "ToolCallSplitter",
    "call_id",
    "call_or_answer_schema",
    "forced_call_schema",
    "hoist_defs",
    "parse_forced_calls",
    "parse_tool_calls",
    "partial_suffix",
]

OPEN_TAG = "<tool_call>"
_TAG_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"```[ \t]*(?:json|tool_call|tool|javascript|js)?[ \t]*\n?(.*?)(?:```|$)", re.DOTALL | re.IGNORECASE)
_NAME_KEYS = ("name", "function", "tool", "tool_name", "function_name")
_ARG_KEYS = ("arguments", "parameters", "args", "input")
_DEF_KEYS = ("$defs", "definitions")


@dataclass(frozen=True, slots=True)
class ParsedCall:
    """A tool call read from model output; ``arguments`` is the JSON object text."""

    name: str
    arguments: str
    id: str = field(default_factory=lambda: call_id())


def call_id() -> str:
    """An OpenAI-style tool call id (``call_`` + 24 hex characters)."""
    return "call_" + uuid.uuid4().hex[:24]


# --------------------------------------------------------------------------- forced calls


def forced_call_schema(
    tools: Sequence[Mapping[str, Any]], *, only: str | None = None, parallel: bool = False
) -> dict[str, Any]:
    """The JSON schema the output must match when a call is required.

    One object ``{"name": <tool>, "arguments": <that tool's parameters>}`` per tool,
    joined by ``anyOf`` (so the arguments always match the chosen tool's schema, not a
    union of all); ``only`` restricts it to one named tool; ``parallel`` asks for a
    non-empty array of such objects. Each tool's ``$defs`` move to the root under a
    per-tool prefix so their ``$ref``s still resolve and never collide.
    """
    defs: dict[str, Any] = {}
    variants: list[dict[str, Any]] = []
    for index, tool in enumerate(tools):
        fn = tool.get("function", tool)
        name = str(fn.get("name") or "")
        if not name or (only is not None and name != only):
            continue
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        params = hoist_defs(params, f"t{index}_", defs)
        variants.append(
            {
                "type": "object",
                "properties": {"name": {"const": name}, "arguments": params},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    if not variants:
        wanted = f"the tool {only!r}" if only is not None else "a tool"
        raise ValueError(f"tool_choice requires {wanted}, but no such tool was given")
    call: dict[str, Any] = variants[0] if len(variants) == 1 else {"anyOf": variants}
    schema: dict[str, Any] = (
        {"type": "array", "items": call, "minItems": 1} if parallel else dict(call)
    )
    if defs:
        schema["$defs"] = defs
    return schema


def call_or_answer_schema(
    tools: Sequence[Mapping[str, Any]], answer: Mapping[str, Any]
) -> dict[str, Any]:
    """Output that is either a call of one of ``tools`` or an ``answer`` in the requested
    response format (``tool_choice`` auto together with a JSON-schema response format)."""
    calls = forced_call_schema(tools)
    defs: dict[str, Any] = dict(calls.pop("$defs", {}))
    combined: dict[str, Any] = {"anyOf": [calls, hoist_defs(answer, "answer_", defs)]}
    if defs:
        combined["$defs"] = defs
    return combined


def hoist_defs(params: Mapping[str, Any], prefix: str, into: dict[str, Any]) -> dict[str, Any]:
    """``params`` without its ``$defs``/``definitions``, which are moved to ``into`` under
    ``prefix`` with every local ``$ref`` rewritten to match."""
    schema = copy.deepcopy(dict(params))
    renames: dict[str, str] = {}
    for key in _DEF_KEYS:
        local = schema.pop(key, None)
        if isinstance(local, Mapping):
            for def_name, def_schema in local.items():
                new_name = f"{prefix}{def_name}"
                renames[f"#/{key}/{def_name}"] = f"#/$defs/{new_name}"
                into[new_name] = def_schema
    if renames:
        _rewrite_refs(schema, renames)
        for new_name in {r.rsplit("/", 1)[1] for r in renames.values()}:
            _rewrite_refs(into[new_name], renames)
    return schema


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in renames:
            node["$ref"] = renames[ref]
        for value in node.values():
            _rewrite_refs(value, renames)
    elif isinstance(node, list):
        for item in node:
            _rewrite_refs(item, renames)


def parse_forced_calls(text: str) -> list[ParsedCall] | None:
    """The calls in grammar-constrained output (one object or an array of them), or None
    when the text is not complete JSON (generation was cut by max_tokens or a stop)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    items = value if isinstance(value, list) else [value]
    calls = [_call_from(item, None) for item in items]
    if not calls or any(call is None for call in calls):
        return None
    return [c for c in calls if c is not None]


# --------------------------------------------------------------------------- lenient parse


def parse_tool_calls(
    text: str, tool_names: Iterable[str], *, repair: bool = True
) -> tuple[list[ParsedCall], str]:
    """The tool calls written in ``text`` and the text that is left.

    Accepted, in order: ``<tool_call>`` blocks (a missing closing tag at the very end is
    fine; the block may hold a fenced object or a list); else fenced blocks holding a
    call; else JSON call objects (or a list of them) that open the text. A candidate
    counts only if its name is one of ``tool_names`` and its arguments are an object
    (or a string holding one): anything else stays text, so prose that merely contains
    JSON is never mistaken for a call. Calls end at the first JSON value that is not a
    call (small models go on to invent the tool's answer). ``repair`` closes up to three
    braces a call lacks at the very end (generation stopped right before them).
    """
    names = frozenset(tool_names)
    if OPEN_TAG in text:
        calls, rest = _extract(text, _TAG_BLOCK, names, repair)
        if calls:
            return calls, rest
    if "```" in text:
        calls, rest = _extract(text, _FENCE, names, repair)
        if calls:
            return calls, rest
    lead = len(text) - len(text.lstrip())
    if text[lead : lead + 1] in ("{", "["):
        found, end = _calls_in(text, lead, names, repair)
        if found:
            rest = text[end:].strip()
            return found, ("" if not rest.strip("}]),;") else rest)  # stray closers: junk
    return [], text


def _extract(
    text: str, pattern: re.Pattern[str], names: frozenset[str], repair: bool
) -> tuple[list[ParsedCall], str]:
    calls: list[ParsedCall] = []
    kept: list[str] = []
    position = 0
    for match in pattern.finditer(text):
        found, _ = _calls_in(_unfence(match.group(1)), 0, names, repair)
        if not found:
            continue
        kept.append(text[position : match.start()])
        position = match.end()
        calls.extend(found)
    kept.append(text[position:])
    rest = "".join(kept).strip() if calls else text
    return calls, rest


def _unfence(body: str) -> str:
    inner = _FENCE.search(body)
    return inner.group(1) if inner else body


def _calls_in(
    body: str, start: int, names: frozenset[str], repair: bool
) -> tuple[list[ParsedCall], int]:
    """Calls in JSON text from ``start``: one object, a list, or several objects one
    after another (small models write that for parallel calls). Returns the calls and
    where they end; parsing stops at anything that is not a call."""
    decoder = json.JSONDecoder()
    calls: list[ParsedCall] = []
    index = end = start
    while True:
        while index < len(body) and body[index] in " \t\r\n,;":
            index += 1
        if index >= len(body) or body[index] not in "{[":
            return calls, end
        try:
            value, after = decoder.raw_decode(body, index)
        except ValueError:
            value, after = (_repair(body[index:]) if repair else None), len(body)
            if value is None:
                return calls, end
        items = value if isinstance(value, list) else [value]
        found = [_call_from(item, names) for item in items]
        if not found or any(call is None for call in found):
            return calls, end
        calls.extend(c for c in found if c is not None)
        index = end = after


def _repair(fragment: str) -> Any:
    """A JSON object that only lacks closing braces (generation stopped right before
    them): close it and try once more."""
    opened = fragment.count("{") - fragment.count("}")
    if not 0 < opened <= 3:
        return None
    try:
        return json.loads(fragment + "}" * opened)
    except ValueError:
        return None


def _call_from(item: Any, names: frozenset[str] | None) -> ParsedCall | None:
    if not isinstance(item, Mapping):
        return None
    fn = item.get("function")
    if isinstance(fn, Mapping):  # {"type": "function", "function": {...}} (OpenAI's shape)
        item = fn
    name = next((item[k] for k in _NAME_KEYS if isinstance(item.get(k), str)), None)
    if not name or (names is not None and name not in names):
        return None
    raw: Any = next((item[k] for k in _ARG_KEYS if k in item), {})
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return None
    if not isinstance(raw, Mapping):
        return None
    return ParsedCall(name, json.dumps(raw, ensure_ascii=False, separators=(",", ":")))


# --------------------------------------------------------------------------- streaming


class ToolCallSplitter:
    """Splits streamed text into what can be shown now and what may be a tool call.

    Text streams through until a call may start: ``<tool_call>`` anywhere (a suffix that
    could be the start of it is held back until the next piece decides), or output that
    opens with ``{``, ``[`` or a code fence. From there on everything is held, and
    :meth:`finish` parses it: the calls, plus any text that turned out not to be one.
    """

    __slots__ = ("_held", "_holding", "_names", "_pending", "_seen")

    def __init__(self, tool_names: Iterable[str]) -> None:
        self._names = frozenset(tool_names)
        self._pending = ""  # not yet shown, may be the start of the open tag
        self._held: list[str] = []
        self._holding = False
        self._seen = False  # any non-space text shown or held yet

    def feed(self, piece: str) -> str:
        """Add ``piece``; return the text that is safe to show now."""
        if self._holding:
            self._held.append(piece)
            return ""
        text = self._pending + piece
        self._pending = ""
        if not self._seen:
            lead = text.lstrip()
            if not lead:
                self._pending = text
                return ""
            self._seen = True
            if lead[0] in "{[" or lead.startswith("`"):
                self._holding = True
                self._held.append(text)
                return ""
        at = text.find(OPEN_TAG)
        if at >= 0:
            self._holding = True
            self._held.append(text[at:])
            return text[:at]
        keep = partial_suffix(text, OPEN_TAG)
        if keep:
            self._pending = text[-keep:]
            return text[:-keep]
        return text

    @property
    def holding(self) -> bool:
        """Whether text is being held as a possible tool call."""
        return self._holding

    def complete_calls(self) -> list[ParsedCall]:
        """The calls complete in the held text so far (none are guessed at)."""
        if not self._holding:
            return []
        calls, _ = parse_tool_calls("".join(self._held), self._names, repair=False)
        return calls

    def finish(self) -> tuple[str, list[ParsedCall]]:
        """The held text that is not a call, and the calls."""
        held = "".join(self._held) + self._pending
        self._held, self._pending = [], ""
        if not held.strip():
            return held if not self._holding else "", []
        calls, rest = parse_tool_calls(held, self._names)
        return (rest if calls else held), calls


def partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
