"""Generic JSON-schema utilities that dialects and the MCP layer share.

Provider APIs accept different subsets of JSON Schema: Gemini wants no ``$ref``, OpenAPI
style ``nullable`` instead of ``anyOf [X, null]`` and a real object at the top of a tool's
parameters; MCP servers send schemas with ``$defs``, ``anyOf`` and no ``properties`` at
all. These functions are the provider-neutral steps of those conversions.

Every function is pure: it works on a deep copy and never mutates its argument, so a
caller's ``Tool.parameters`` stays exactly what the user gave.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any, Literal

from tollway.core.errors import BadRequestError

Schema = dict[str, Any]

# Keywords whose value is a map name -> subschema, a list of subschemas, or one subschema.
SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
SCHEMA_VALUES = (
    "items", "additionalProperties", "not", "contains", "if", "then", "else",
    "propertyNames", "unevaluatedProperties", "unevaluatedItems", "additionalItems",
)

DEFAULT_RECURSION_DEPTH = 2
"""How many times :func:`inline_refs` expands a self-referencing ``$ref`` on one path
before it cuts the branch (see ``on_recursion``)."""


def subschemas(node: Schema) -> Iterator[Any]:
    """Every direct subschema of ``node`` (property schemas, items, anyOf members...).

    Property *names* are never visited as keywords, so a property called ``title`` or
    ``default`` is safe from keyword-stripping code built on this walk.
    """
    for key in SCHEMA_MAPS:
        children = node.get(key)
        if isinstance(children, dict):
            yield from children.values()
    for key in SCHEMA_LISTS:
        children = node.get(key)
        if isinstance(children, list):
            yield from children
    for key in SCHEMA_VALUES:
        child = node.get(key)
        if isinstance(child, dict):
            yield child
        elif isinstance(child, list):  # draft-4 tuple form of "items"
            yield from child


def map_schema(schema: Any, fn: Callable[[Schema], Schema]) -> Any:
    """Apply ``fn`` to every subschema, children first, and return the rebuilt tree.

    ``fn`` receives a dict whose children are already transformed and returns the node
    to use in its place (it may return a new dict). Non-dict values pass through.
    """
    if not isinstance(schema, dict):
        return schema
    node = dict(schema)
    for key in SCHEMA_MAPS:
        children = node.get(key)
        if isinstance(children, dict):
            node[key] = {name: map_schema(child, fn) for name, child in children.items()}
    for key in SCHEMA_LISTS:
        children = node.get(key)
        if isinstance(children, list):
            node[key] = [map_schema(child, fn) for child in children]
    for key in SCHEMA_VALUES:
        child = node.get(key)
        if isinstance(child, dict):
            node[key] = map_schema(child, fn)
        elif isinstance(child, list):
            node[key] = [map_schema(item, fn) for item in child]
    return fn(node)


# --------------------------------------------------------------------------- $ref


def inline_refs(
    schema: Schema,
    *,
    on_recursion: Literal["truncate", "error"] = "truncate",
    max_depth: int = DEFAULT_RECURSION_DEPTH,
) -> Schema:
    """``schema`` with every local ``$ref`` replaced by the schema it points to, and the
    ``$defs`` / ``definitions`` tables removed.

    Keywords beside a ``$ref`` (a property's ``description``) are kept and win over the
    target's. Only local references (``#/...`` JSON pointers) are resolved; a remote one
    is a :class:`BadRequestError`.

    A recursive schema (a tree node whose children are tree nodes) cannot be fully
    inlined. With ``on_recursion="truncate"`` (the default) a reference is expanded at
    most ``max_depth`` times on one path, then replaced by an open object schema whose
    description says the structure was cut; with ``"error"`` a BadRequestError names the
    recursive definition so the caller can flatten it.
    """
    root = copy.deepcopy(schema) if isinstance(schema, dict) else {}
    out = _resolve(root, root, (), on_recursion, max_depth)
    if isinstance(out, dict):
        out.pop("$defs", None)
        out.pop("definitions", None)
    return out


def _resolve(
    node: Any, root: Schema, stack: tuple[str, ...], mode: str, max_depth: int
) -> Any:
    if isinstance(node, list):
        return [_resolve(item, root, stack, mode, max_depth) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if stack.count(ref) >= max_depth or (mode == "error" and ref in stack):
            if mode == "error":
                raise BadRequestError(
                    f"JSON schema reference {ref!r} is recursive and cannot be inlined for "
                    "this provider; flatten the recursive model or cap its depth"
                )
            cut: Schema = {
                "type": "object",
                "description": f"(recursive structure {ref.rsplit('/', 1)[-1]!r} not expanded)",
            }
            cut.update(_resolve(siblings, root, stack, mode, max_depth))
            return cut
        target = _lookup(root, ref)
        resolved = _resolve(copy.deepcopy(target), root, (*stack, ref), mode, max_depth)
        if not isinstance(resolved, dict):
            resolved = {}
        resolved.pop("$defs", None)
        resolved.pop("definitions", None)
        resolved.update(_resolve(siblings, root, stack, mode, max_depth))
        return resolved
    out: Schema = {}
    for key, value in node.items():
        if key in ("$defs", "definitions"):
            continue  # tables are only read through references
        if key in SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {n: _resolve(v, root, stack, mode, max_depth) for n, v in value.items()}
        elif key in SCHEMA_LISTS or key in SCHEMA_VALUES:
            out[key] = _resolve(value, root, stack, mode, max_depth)
        else:
            out[key] = value
    return out


def _lookup(root: Schema, ref: str) -> Any:
    if not ref.startswith("#"):
        raise BadRequestError(
            f"JSON schema reference {ref!r} is not local; only '#/...' references "
            "(e.g. '#/$defs/Name') can be inlined: embed the referenced schema"
        )
    node: Any = root
    for raw in ref[1:].split("/")[1:] if ref != "#" else []:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise BadRequestError(
                f"JSON schema reference {ref!r} points to nothing; add the definition "
                "under '$defs' or fix the reference"
            )
    return node


# --------------------------------------------------------------------------- nullable


def simplify_nullable(schema: Schema) -> Schema:
    """OpenAPI-style nullability: ``anyOf/oneOf [X, {"type": "null"}]`` becomes X with
    ``nullable: true``, and ``type: [T, "null"]`` becomes ``type: T`` + ``nullable``.

    When several non-null alternatives remain, they stay in ``anyOf`` and the node gets
    ``nullable: true``. Keywords beside the ``anyOf`` (a description) are kept and win.
    """
    return map_schema(copy.deepcopy(schema), _nullable_node)


def _is_null_schema(node: Any) -> bool:
    return (
        isinstance(node, dict)
        and node.get("type") == "null"
        and set(node) <= {"type", "title", "description"}
    )


def _nullable_node(node: Schema) -> Schema:
    kind = node.get("type")
    if isinstance(kind, list) and "null" in kind:
        rest = [t for t in kind if t != "null"]
        node["nullable"] = True
        if len(rest) == 1:
            node["type"] = rest[0]
        elif rest:
            node["type"] = rest
        else:
            node.pop("type")
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if not isinstance(options, list) or not any(_is_null_schema(o) for o in options):
            continue
        rest = [o for o in options if not _is_null_schema(o)]
        del node[key]
        node["nullable"] = True
        if len(rest) == 1 and isinstance(rest[0], dict):
            merged = dict(rest[0])
            merged.update(node)  # the outer description / title win
            node = merged
        elif rest:
            node[key] = rest
    return node


# --------------------------------------------------------------------------- objects


def ensure_object_schema(schema: Schema | None) -> Schema:
    """A valid top-level object schema for tool parameters.

    ``None`` or ``{}`` becomes ``{"type": "object", "properties": {}}``; a schema with
    ``properties`` but no ``type`` gets ``type: object``; an object without
    ``properties`` gets an empty one; ``required`` names that are not properties are
    dropped (providers reject them). A schema whose top is not an object (an array, a
    string) is a :class:`BadRequestError`: tool arguments are always a JSON object.
    """
    out: Schema = copy.deepcopy(schema) if schema else {}
    kind = out.get("type")
    if kind is None:
        out["type"] = "object"
    elif kind != "object" and not (isinstance(kind, list) and "object" in kind):
        raise BadRequestError(
            f"tool parameters must be a JSON schema of type 'object', got type {kind!r}; "
            "wrap the value in an object property"
        )
    props = out.get("properties")
    if not isinstance(props, dict):
        out["properties"] = props = {}
    required = out.get("required")
    if isinstance(required, list):
        kept = [name for name in required if name in props]
        if kept:
            out["required"] = kept
        else:
            out.pop("required")
    return out


def is_empty_object_schema(schema: Schema | None) -> bool:
    """True for a schema that describes an object with no declared properties (the
    "no arguments" tool): ``None``, ``{}``, or ``{"type": "object", "properties": {}}``
    possibly with ``additionalProperties`` / ``title`` / ``$schema`` noise."""
    if not schema:
        return True
    if schema.get("type", "object") != "object":
        return False
    if schema.get("properties"):
        return False
    structural = {"anyOf", "oneOf", "allOf", "$ref", "items", "enum", "patternProperties"}
    return not structural.intersection(schema)
