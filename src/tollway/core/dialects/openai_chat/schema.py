"""JSON schema -> the subset OpenAI accepts with ``strict: true``.

OpenAI's strict mode (tools and ``response_format``) rejects a schema unless every
object says ``additionalProperties: false`` and lists *all* its properties in
``required``. A property the user meant as optional therefore has to become nullable
instead, so the model can still say "absent" (``null``). The conversion works on a copy
(the caller's Tool keeps its own schema) and is idempotent: a schema that is already
strict-compatible comes back equal.
"""

from __future__ import annotations

import copy
from typing import Any

_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_VALUES = ("items", "not", "contains", "if", "then", "else")


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A strict-compatible deep copy of ``schema`` (see the module docstring)."""
    out = copy.deepcopy(schema)
    _strictify(out)
    return out


def _strictify(node: Any) -> None:
    if not isinstance(node, dict):
        return
    if node.get("default", 0) is None:
        del node["default"]  # ``default: null`` is noise strict mode may reject
    for key in _SCHEMA_MAPS:
        children = node.get(key)
        if isinstance(children, dict):
            for child in children.values():
                _strictify(child)
    for key in _SCHEMA_LISTS:
        children = node.get(key)
        if isinstance(children, list):
            for child in children:
                _strictify(child)
    for key in _SCHEMA_VALUES:
        _strictify(node.get(key))
    if _is_object(node):
        properties = node.setdefault("properties", {})
        node["additionalProperties"] = False
        required = [n for n in node.get("required") or () if n in properties]
        for name, prop in properties.items():
            if name not in required:
                if isinstance(prop, dict):
                    properties[name] = _nullable(prop)
                required.append(name)
        node["required"] = required  # the given order first, so the result is idempotent


def _is_object(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    if kind == "object" or (isinstance(kind, list) and "object" in kind):
        return True
    return kind is None and "properties" in node


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    """``prop`` that also accepts null (unchanged if it already does)."""
    kind = prop.get("type")
    if isinstance(kind, str):
        if kind == "null":
            return prop
        prop["type"] = [kind, "null"]
        if isinstance(prop.get("enum"), list) and None not in prop["enum"]:
            prop["enum"] = [*prop["enum"], None]
        return prop
    if isinstance(kind, list):
        if "null" not in kind:
            prop["type"] = [*kind, "null"]
        if isinstance(prop.get("enum"), list) and None not in prop["enum"]:
            prop["enum"] = [*prop["enum"], None]
        return prop
    for key in ("anyOf", "oneOf"):
        branches = prop.get(key)
        if isinstance(branches, list):
            if not any(isinstance(b, dict) and b.get("type") == "null" for b in branches):
                branches.append({"type": "null"})
            return prop
    if "$ref" in prop or "allOf" in prop or "enum" in prop or "const" in prop:
        # Keep annotations (description, title) beside the union; the constraint moves in.
        inner_keys = ("$ref", "allOf", "enum", "const")
        inner = {k: prop.pop(k) for k in inner_keys if k in prop}
        return {**prop, "anyOf": [inner, {"type": "null"}]}
    return prop  # an unconstrained schema ({}) already admits null
