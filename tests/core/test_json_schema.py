"""core.schema: $ref inlining, OpenAPI nullability, valid object schemas (all pure)."""

from __future__ import annotations

import copy

import pytest

from tollway.core.errors import BadRequestError
from tollway.core.json_schema import (
    ensure_object_schema,
    inline_refs,
    is_empty_object_schema,
    map_schema,
    simplify_nullable,
)

PYDANTIC_NESTED = {
    "$defs": {
        "Address": {
            "properties": {"city": {"title": "City", "type": "string"}},
            "required": ["city"],
            "title": "Address",
            "type": "object",
        }
    },
    "properties": {
        "home": {"$ref": "#/$defs/Address", "description": "where they live"},
        "work": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}], "default": None},
    },
    "required": ["home"],
    "title": "Person",
    "type": "object",
}

TREE = {
    "$defs": {
        "Node": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
            },
        }
    },
    "$ref": "#/$defs/Node",
}


def test_inline_refs_replaces_references_and_drops_defs_table() -> None:
    out = inline_refs(PYDANTIC_NESTED)
    assert "$defs" not in out
    assert out["properties"]["home"]["properties"]["city"]["type"] == "string"
    assert out["properties"]["work"]["anyOf"][0]["required"] == ["city"]
    assert "$ref" not in str(out)


def test_inline_refs_keeps_sibling_keywords_over_the_target() -> None:
    out = inline_refs(PYDANTIC_NESTED)
    assert out["properties"]["home"]["description"] == "where they live"
    assert out["properties"]["home"]["title"] == "Address"


def test_inline_refs_never_mutates_its_argument() -> None:
    before = copy.deepcopy(PYDANTIC_NESTED)
    inline_refs(PYDANTIC_NESTED)
    assert before == PYDANTIC_NESTED


def test_inline_refs_resolves_definitions_and_escaped_pointers() -> None:
    schema = {
        "definitions": {"a/b": {"type": "integer"}},
        "properties": {"n": {"$ref": "#/definitions/a~1b"}},
        "type": "object",
    }
    out = inline_refs(schema)
    assert out == {"properties": {"n": {"type": "integer"}}, "type": "object"}


def test_inline_refs_cuts_recursive_reference_after_bounded_depth() -> None:
    out = inline_refs(TREE, max_depth=2)
    level1 = out["properties"]["children"]["items"]
    level2 = level1["properties"]["children"]["items"]
    assert level1["properties"]["name"] == {"type": "string"}
    assert level2["type"] == "object"
    assert "recursive" in level2["description"]
    assert "properties" not in level2
    assert "$ref" not in str(out)


def test_inline_refs_recursive_reference_raises_when_asked() -> None:
    with pytest.raises(BadRequestError, match="recursive"):
        inline_refs(TREE, on_recursion="error")


def test_inline_refs_rejects_remote_and_dangling_references() -> None:
    with pytest.raises(BadRequestError, match="not local"):
        inline_refs({"$ref": "https://example.com/schema.json"})
    with pytest.raises(BadRequestError, match="points to nothing"):
        inline_refs({"properties": {"x": {"$ref": "#/$defs/Missing"}}})


def test_simplify_nullable_turns_anyof_null_into_nullable_and_keeps_outer_keywords() -> None:
    schema = {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}],
              "description": "nick", "default": None}
    out = simplify_nullable(schema)
    assert out == {"type": "string", "maxLength": 5, "nullable": True, "description": "nick",
                   "default": None}


def test_simplify_nullable_handles_type_lists_oneof_and_nested_nodes() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": ["integer", "null"]},
            "b": {"type": "array", "items": {"oneOf": [{"type": "null"}, {"type": "boolean"}]}},
            "c": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
        },
    }
    out = simplify_nullable(schema)
    assert out["properties"]["a"] == {"type": "integer", "nullable": True}
    assert out["properties"]["b"]["items"] == {"type": "boolean", "nullable": True}
    assert out["properties"]["c"] == {
        "anyOf": [{"type": "string"}, {"type": "integer"}], "nullable": True,
    }
    assert schema["properties"]["a"] == {"type": ["integer", "null"]}  # untouched


def test_ensure_object_schema_makes_missing_or_empty_schemas_valid() -> None:
    assert ensure_object_schema(None) == {"type": "object", "properties": {}}
    assert ensure_object_schema({}) == {"type": "object", "properties": {}}
    assert ensure_object_schema({"properties": {"x": {"type": "string"}}}) == {
        "type": "object", "properties": {"x": {"type": "string"}},
    }
    assert ensure_object_schema({"type": "object"}) == {"type": "object", "properties": {}}


def test_ensure_object_schema_drops_required_names_that_are_not_properties() -> None:
    out = ensure_object_schema(
        {"type": "object", "properties": {"a": {}}, "required": ["a", "ghost"]}
    )
    assert out["required"] == ["a"]
    assert "required" not in ensure_object_schema({"type": "object", "required": ["ghost"]})


def test_ensure_object_schema_rejects_a_non_object_top_level() -> None:
    with pytest.raises(BadRequestError, match="type 'object'"):
        ensure_object_schema({"type": "array", "items": {"type": "string"}})


def test_is_empty_object_schema_recognises_no_argument_tools_only() -> None:
    assert is_empty_object_schema(None)
    assert is_empty_object_schema({"type": "object", "properties": {},
                                   "additionalProperties": False, "title": "Args"})
    assert not is_empty_object_schema({"type": "object", "properties": {"a": {}}})
    assert not is_empty_object_schema({"$ref": "#/$defs/A"})
    assert not is_empty_object_schema({"type": "string"})


def test_map_schema_never_treats_property_names_as_keywords() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string", "title": "T"},
                                               "default": {"type": "integer"}}}

    def strip_title(node: dict) -> dict:
        node.pop("title", None)
        return node

    out = map_schema(schema, strip_title)
    assert set(out["properties"]) == {"title", "default"}
    assert out["properties"]["title"] == {"type": "string"}
