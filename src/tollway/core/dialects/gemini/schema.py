"""JSON schema -> the OpenAPI 3.0 subset Gemini's ``Schema`` accepts.

Gemini (and Vertex AI) reject, with a 400 naming the field, any keyword outside its
``Schema`` message: ``$ref`` / ``$defs``, ``additionalProperties``, ``$schema``,
``title``, ``default``, ``examples``, ``const``, ``oneOf``, ``allOf``, type arrays, and
formats other than a few. It also rejects an OBJECT with an empty ``properties`` map,
an ARRAY without ``items``, and ``enum`` on anything but strings. This module rewrites a
JSON schema (pydantic's, an MCP server's) into that subset without losing meaning where
it can:

- references are inlined (recursive ones cut after two levels, see core.schema);
- ``anyOf [X, null]`` / ``type: [X, "null"]`` become X with ``nullable: true``;
- ``oneOf`` becomes ``anyOf``; a single-member ``allOf`` / ``anyOf`` is merged in;
- ``const`` becomes a one-value ``enum``; enum values become strings (type STRING);
- a string ``format`` Gemini does not know moves into the description;
- ``required`` keeps only names that are properties;
- a nested object without properties is a bare OBJECT; at the top it means "no
  parameters" and the caller omits the schema;
- an array without ``items`` gets string items (Gemini insists on an item type).

Types are written in Gemini's upper-case enum spelling (``STRING``, ``OBJECT``).
"""

from __future__ import annotations

from typing import Any

from tollway.core.json_schema import inline_refs, simplify_nullable

_TYPES = {
    "string": "STRING",
    "number": "NUMBER",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
    "array": "ARRAY",
    "object": "OBJECT",
}
_FORMATS = {
    "STRING": {"date-time", "enum"},
    "NUMBER": {"float", "double"},
    "INTEGER": {"int32", "int64"},
}
_COPIED = (
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minProperties",
    "maxProperties",
)


def to_gemini_schema(
    schema: dict[str, Any] | None, *, response: bool = False
) -> dict[str, Any] | None:
    """The Gemini form of ``schema``, or None when it declares no properties at all
    (a tool without arguments: omit ``parameters``).

    ``response=True`` (structured output) also writes ``propertyOrdering``, so Gemini
    emits the keys in the order the schema lists them instead of alphabetically.
    """
    if not schema:
        return None
    flat = simplify_nullable(inline_refs(schema))
    out = _convert(flat, response)
    if out.get("anyOf") or (out.get("type") not in (None, "OBJECT")) or out.get("properties"):
        return out
    return None


def _convert(node: Any, response: bool) -> dict[str, Any]:
    if not isinstance(node, dict):
        return {}
    node = _merge_all_of(node)
    out: dict[str, Any] = {}
    description = node.get("description")
    if isinstance(description, str) and description:
        out["description"] = description
    if node.get("nullable") is True:
        out["nullable"] = True

    enum = node.get("enum")
    if "const" in node and not isinstance(enum, list):
        enum = [node["const"]]
    kind = node.get("type")
    if isinstance(kind, list):  # several non-null types left by simplify_nullable
        alternatives = [{"type": t} for t in kind if t in _TYPES]
        node = {k: v for k, v in node.items() if k != "type"}
        node["anyOf"] = [*node.get("anyOf", []), *alternatives]
        kind = None
    if kind == "null":
        out["nullable"] = True
        kind = None
    if kind is None:
        if "properties" in node:
            kind = "object"
        elif "items" in node:
            kind = "array"

    if isinstance(enum, list):
        if None in enum:
            out["nullable"] = True
        out["type"] = "STRING"
        out["enum"] = [v if isinstance(v, str) else _enum_text(v) for v in enum if v is not None]
        return out

    options = node.get("anyOf", node.get("oneOf"))
    if isinstance(options, list):
        converted = [c for c in (_convert(o, response) for o in options) if c]
        if len(converted) == 1 and kind is None:
            merged = converted[0]
            merged.update(out)  # the outer description / nullable win
            return merged
        if converted:
            out["anyOf"] = converted
        if kind is None:
            return out

    gemini_type = _TYPES.get(kind) if isinstance(kind, str) else None
    if gemini_type is None:
        return out
    out["type"] = gemini_type
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt:
        if fmt in _FORMATS.get(gemini_type, ()):
            out["format"] = fmt
        elif gemini_type == "STRING":
            note = f"(format: {fmt})"
            out["description"] = f"{out['description']} {note}" if "description" in out else note
    for key in _COPIED:
        if key in node and isinstance(node[key], int | float) and not isinstance(node[key], bool):
            out[key] = node[key]

    if gemini_type == "OBJECT":
        props = node.get("properties")
        if isinstance(props, dict) and props:
            out["properties"] = {name: _convert(p, response) for name, p in props.items()}
            required = [r for r in node.get("required") or () if r in props]
            if required:
                out["required"] = required
            if response and len(props) > 1:
                out["propertyOrdering"] = list(props)
    elif gemini_type == "ARRAY":
        items = node.get("items")
        if isinstance(items, list):  # draft-4 tuple: any of the positional schemas
            items = {"anyOf": items} if len(items) > 1 else (items[0] if items else None)
        converted_items = _convert(items, response) if isinstance(items, dict) else {}
        out["items"] = converted_items or {"type": "STRING"}
    return out


def _merge_all_of(node: dict[str, Any]) -> dict[str, Any]:
    members = node.get("allOf")
    if not isinstance(members, list):
        return node
    merged = {k: v for k, v in node.items() if k != "allOf"}
    for member in members:
        if not isinstance(member, dict):
            continue
        member = _merge_all_of(member)
        for key, value in member.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**value, **merged.get("properties", {})}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _enum_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
