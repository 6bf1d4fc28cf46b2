"""tollway.mcp.tools: exposed names, schema normalisation, allow lists, result parts.

Pure functions, fed real ``mcp.types`` objects where they take SDK values.
"""

from __future__ import annotations

import asyncio
import base64
import re

import pytest
from mcp import types
from pydantic import BaseModel, ValidationError

from tollway.core.errors import BadRequestError
from tollway.core.types import Image, Text
from tollway.mcp.tools import (
    FunctionTool,
    ToolCatalog,
    ToolOutput,
    content_to_parts,
    expose_names,
    is_allowed,
    normalise_schema,
    output_from_result,
    sanitize_name,
    value_to_output,
)

LEGAL = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


# --------------------------------------------------------------------------- names


def test_legal_names_stay_readable_as_prefix_separator_tool() -> None:
    names = expose_names([("time", "get_current_time"), ("github", "create-issue")])
    assert names == {
        ("time", "get_current_time"): "time__get_current_time",
        ("github", "create-issue"): "github__create-issue",
    }


def test_separator_is_configurable_and_an_empty_prefix_exposes_the_bare_name() -> None:
    names = expose_names([("fs", "read"), ("", "write")], separator="-")
    assert names == {("fs", "read"): "fs-read", ("", "write"): "write"}


def test_separator_with_illegal_characters_is_rejected() -> None:
    with pytest.raises(BadRequestError, match="separator"):
        expose_names([("a", "b")], separator=".")


def test_illegal_characters_are_replaced_and_a_hash_keeps_names_apart() -> None:
    names = expose_names([("srv", "files.read"), ("srv", "files_read"), ("srv", "files/read")])
    assert names[("srv", "files_read")] == "srv__files_read"  # already legal: unchanged
    changed = [names[("srv", "files.read")], names[("srv", "files/read")]]
    assert all(LEGAL.match(n) and n.startswith("srv__files_read_") for n in changed)
    assert len(set(names.values())) == 3


def test_long_names_are_cut_to_64_characters_and_stay_unique() -> None:
    base = "a_very_long_tool_name_that_goes_on_and_on_and_on_for_ever_and_"
    pairs = [("enterprise_search", base + "one"), ("enterprise_search", base + "two")]
    names = expose_names(pairs)
    assert all(len(n) <= 64 and LEGAL.match(n) for n in names.values())
    assert len(set(names.values())) == 2


def test_names_do_not_depend_on_listing_order() -> None:
    pairs = [("s", "x.y"), ("s", "x_y"), ("t", "9lives"), ("s", "x y")]
    assert expose_names(pairs) == expose_names(list(reversed(pairs)))


def test_a_name_starting_with_a_digit_gets_a_leading_underscore() -> None:
    assert sanitize_name("9lives") == "_9lives"
    name = expose_names([("", "9lives")])[("", "9lives")]
    assert LEGAL.match(name)


def test_two_servers_with_the_same_prefix_and_tool_are_refused_not_merged() -> None:
    tool = types.Tool(name="search", inputSchema={"type": "object"})
    with pytest.raises(BadRequestError, match="another prefix"):
        ToolCatalog.build({"a": ("web", [tool]), "b": ("web", [tool])})


def test_catalog_maps_exposed_names_back_to_server_and_tool() -> None:
    tool = types.Tool(name="search", description="Search.", inputSchema={"type": "object"})
    catalog = ToolCatalog.build({"a": ("a", [tool]), "b": ("b", [tool])})
    assert sorted(catalog.tools) == ["a__search", "b__search"]
    found = catalog.get("b__search")
    assert found is not None and (found.server, found.name) == ("b", "search")
    assert found.tool.name == "b__search" and found.tool.description == "Search."
    assert catalog.find("a", "search") is catalog.get("a__search")


# --------------------------------------------------------------------------- allow / deny


def test_allow_and_deny_lists_take_names_and_patterns_and_deny_wins() -> None:
    assert is_allowed("read_file", None, ())
    assert is_allowed("read_file", ["read_*"], ())
    assert not is_allowed("write_file", ["read_*"], ())
    assert not is_allowed("read_secret", ["read_*"], ["*secret*"])
    assert not is_allowed("anything", None, ["anything"])


# --------------------------------------------------------------------------- schemas


class Address(BaseModel):
    city: str
    zip: str | None = None


class Person(BaseModel):
    name: str
    home: Address
    work: Address | None = None


def test_refs_are_inlined_and_defs_removed() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"person": {"$ref": "#/$defs/Person"}},
        "required": ["person"],
        "$defs": Person.model_json_schema()["$defs"] | {"Person": Person.model_json_schema()},
    }
    out = normalise_schema(schema)
    text = repr(out)
    assert "$ref" not in text and "$defs" not in text and "$schema" not in text
    person = out["properties"]["person"]
    assert person["properties"]["home"]["properties"]["city"] == {"title": "City", "type": "string"}
    work = person["properties"]["work"]["anyOf"]
    assert work[0]["properties"]["city"]["type"] == "string" and work[1] == {"type": "null"}
    assert out["required"] == ["person"]


def test_empty_and_typeless_schemas_become_valid_objects() -> None:
    assert normalise_schema(None) == {"type": "object", "properties": {}}
    assert normalise_schema({}) == {"type": "object", "properties": {}}
    out = normalise_schema({"properties": {"q": {"type": "string"}}, "required": ["q", "ghost"]})
    assert out == {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def test_a_non_object_schema_is_replaced_by_an_open_object() -> None:
    assert normalise_schema({"type": "array", "items": {"type": "string"}}) == {
        "type": "object", "properties": {},
    }


def test_normalising_never_changes_the_servers_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": {"type": "integer"}}}
    before = repr(schema)
    normalise_schema(schema)
    assert repr(schema) == before


# --------------------------------------------------------------------------- results


def test_content_blocks_become_text_and_image_parts() -> None:
    blocks = [
        types.TextContent(type="text", text="hello"),
        types.ImageContent(type="image", data=base64.b64encode(PNG).decode(), mimeType="image/png"),
        types.EmbeddedResource(
            type="resource",
            resource=types.TextResourceContents(uri="file:///a.txt", text="file body", mimeType="text/plain"),
        ),
        types.EmbeddedResource(
            type="resource",
            resource=types.BlobResourceContents(
                uri="file:///b.png", blob=base64.b64encode(PNG).decode(), mimeType="image/png"
            ),
        ),
        types.AudioContent(type="audio", data=base64.b64encode(b"RIFF0000").decode(), mimeType="audio/wav"),
        types.ResourceLink(type="resource_link", uri="https://example.com/r", name="report"),
    ]
    parts = content_to_parts(blocks)
    assert parts[0] == Text("hello")
    assert isinstance(parts[1], Image) and parts[1].data == PNG and parts[1].media_type == "image/png"
    assert parts[2] == Text("file body")
    assert isinstance(parts[3], Image) and parts[3].data == PNG
    assert isinstance(parts[4], Text) and "audio/wav" in parts[4].text and "8 bytes" in parts[4].text
    assert isinstance(parts[5], Text) and "https://example.com/r" in parts[5].text


def test_is_error_results_stay_results_marked_as_errors() -> None:
    result = types.CallToolResult(content=[types.TextContent(type="text", text="no such city")], isError=True)
    output = output_from_result(result, server="weather", tool="forecast")
    assert output.is_error and output.status == "tool_error" and output.error is None
    assert output.text == "no such city"
    with pytest.raises(Exception, match="no such city"):
        output.raise_for_error()


def test_structured_only_results_are_sent_as_json_text() -> None:
    result = types.CallToolResult(content=[], structuredContent={"temp": 21.5})
    output = output_from_result(result, server="w", tool="t")
    assert output.text == '{"temp": 21.5}' and output.structured == {"temp": 21.5}
    assert output.tool_content() == '{"temp": 21.5}'


def test_tool_content_is_a_string_for_text_and_parts_when_there_is_an_image() -> None:
    assert ToolOutput([Text("a"), Text("b")]).tool_content() == "a\nb"
    mixed = ToolOutput([Text("see"), Image(data=PNG, media_type="image/png")]).tool_content()
    assert isinstance(mixed, list) and isinstance(mixed[1], Image)


# --------------------------------------------------------------------------- local tools


def test_function_tool_schema_comes_from_the_signature_and_docstring() -> None:
    def forecast(city: str, days: int = 3, person: Person | None = None) -> str:
        """Weather forecast for a city."""
        return city

    tool = FunctionTool.of(forecast).tool
    assert tool.name == "forecast" and tool.description == "Weather forecast for a city."
    props = tool.parameters["properties"]
    assert props["city"]["type"] == "string" and props["days"]["default"] == 3
    assert tool.parameters["required"] == ["city"]
    assert "$ref" not in repr(tool.parameters)


def test_function_tools_validate_arguments_and_run_sync_and_async() -> None:
    def add(a: int, b: int) -> int:
        return a + b

    async def shout(text: str) -> str:
        return text.upper()

    assert asyncio.run(FunctionTool.of(add).acall({"a": "2", "b": 3})) == 5
    assert asyncio.run(FunctionTool.of(shout).acall({"text": "hi"})) == "HI"
    assert FunctionTool.of(add).call({"a": 1, "b": 1}) == 2
    with pytest.raises(ValidationError):
        asyncio.run(FunctionTool.of(add).acall({"a": 1, "c": 2}))


def test_function_results_become_text_or_json() -> None:
    assert value_to_output("plain", tool="t").text == "plain"
    assert value_to_output({"a": 1}, tool="t").text == '{"a": 1}'
    assert value_to_output(Address(city="Oslo"), tool="t").text == '{"city": "Oslo", "zip": null}'


def test_prefix_and_name_that_spell_the_same_string_both_get_a_hash() -> None:
    names = expose_names([("a", "b__c"), ("a__b", "c")])
    assert len(set(names.values())) == 2
    assert all(n.startswith("a__b__c_") and LEGAL.match(n) for n in names.values())
