"""Tool calls from local model output: the forced-call schema and its grammar, the
lenient parser on the shapes small models write, and the streaming splitter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tollway.local.tools import (
    ToolCallSplitter,
    call_id,
    call_or_answer_schema,
    forced_call_schema,
    parse_forced_calls,
    parse_tool_calls,
)

jsonschema = pytest.importorskip("jsonschema")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"$ref": "#/$defs/Zone"}},
            "required": ["zone"],
            "$defs": {"Zone": {"type": "string", "enum": ["UTC", "CET"]}},
        },
    },
}
TRIP = {  # its own "Zone" def must not collide with CLOCK's
    "type": "function",
    "function": {
        "name": "plan_trip",
        "parameters": {
            "type": "object",
            "properties": {"to": {"$ref": "#/$defs/Zone"}},
            "required": ["to"],
            "$defs": {"Zone": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"]}},
        },
    },
}
NAMES = ["get_weather", "get_time", "plan_trip"]


def _valid(schema: dict[str, Any], value: Any) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(value)


# --------------------------------------------------------------------------- forced schema


def test_forced_schema_accepts_a_call_with_the_chosen_tools_own_arguments() -> None:
    schema = forced_call_schema([WEATHER, CLOCK, TRIP])
    assert _valid(schema, {"name": "get_weather", "arguments": {"city": "Oslo"}})
    assert _valid(schema, {"name": "get_time", "arguments": {"zone": "CET"}})
    assert _valid(schema, {"name": "plan_trip", "arguments": {"to": {"city": "Rome"}}})


def test_forced_schema_rejects_unknown_names_and_another_tools_arguments() -> None:
    schema = forced_call_schema([WEATHER, CLOCK, TRIP])
    assert not _valid(schema, {"name": "delete_all", "arguments": {}})
    assert not _valid(schema, {"name": "get_weather", "arguments": {"zone": "UTC"}})
    assert not _valid(schema, {"name": "get_time", "arguments": {"zone": "PST"}})
    assert not _valid(schema, {"name": "plan_trip", "arguments": {"to": "CET"}})
    assert not _valid(schema, {"name": "get_weather"})


def test_forced_schema_for_a_named_tool_admits_only_that_tool() -> None:
    schema = forced_call_schema([WEATHER, CLOCK], only="get_time")
    assert _valid(schema, {"name": "get_time", "arguments": {"zone": "UTC"}})
    assert not _valid(schema, {"name": "get_weather", "arguments": {"city": "Oslo"}})
    with pytest.raises(ValueError, match="nope"):
        forced_call_schema([WEATHER], only="nope")


def test_forced_schema_for_parallel_calls_is_a_non_empty_array() -> None:
    schema = forced_call_schema([WEATHER, CLOCK], parallel=True)
    two = [{"name": "get_weather", "arguments": {"city": "A"}},
           {"name": "get_time", "arguments": {"zone": "UTC"}}]
    assert _valid(schema, two)
    assert not _valid(schema, [])
    assert not _valid(schema, two[0])


def test_forced_schema_leaves_the_callers_tool_schemas_untouched() -> None:
    before = json.dumps(CLOCK, sort_keys=True)
    forced_call_schema([CLOCK, TRIP])
    assert json.dumps(CLOCK, sort_keys=True) == before


def test_call_or_answer_schema_admits_a_call_or_the_response_format_but_nothing_else() -> None:
    answer = {
        "type": "object",
        "properties": {"zone": {"$ref": "#/$defs/Zone"}, "note": {"type": "string"}},
        "required": ["zone", "note"],
        "$defs": {"Zone": {"type": "integer"}},  # same def name as CLOCK's, other meaning
    }
    schema = call_or_answer_schema([WEATHER, CLOCK], answer)
    assert _valid(schema, {"name": "get_time", "arguments": {"zone": "UTC"}})
    assert _valid(schema, {"zone": 3, "note": "x"})
    assert not _valid(schema, {"zone": "UTC", "note": "x"})
    assert not _valid(schema, {"name": "get_time", "arguments": {"zone": 3}})
    assert not _valid(schema, {"note": "x"})


def test_forced_schema_converts_to_a_grammar_that_pins_names_and_arguments() -> None:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(json.dumps(forced_call_schema([WEATHER, CLOCK, TRIP])))
    assert "root ::=" in gbnf
    for literal in ('\\"get_weather\\"', '\\"get_time\\"', '\\"plan_trip\\"', '\\"CET\\"', '\\"city\\"'):
        assert literal in gbnf


def test_forced_output_parses_into_calls_with_compact_arguments() -> None:
    calls = parse_forced_calls('{ "name": "get_weather" , "arguments": { "city": "Oslo" } }')
    assert calls is not None and [(c.name, c.arguments) for c in calls] == [
        ("get_weather", '{"city":"Oslo"}')
    ]
    many = parse_forced_calls('[{"name":"a","arguments":{}},{"name":"b","arguments":{"x":1}}]')
    assert many is not None and [c.name for c in many] == ["a", "b"]
    assert many[0].id != many[1].id


def test_forced_output_cut_short_is_not_a_call() -> None:
    assert parse_forced_calls('{"name": "get_weather", "arguments": {"ci') is None
    assert parse_forced_calls("") is None


def test_call_ids_look_like_openai_ids_and_are_unique() -> None:
    ids = {call_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("call_") and len(i) == 29 for i in ids)


# --------------------------------------------------------------------------- lenient parser

LENIENT_SHAPES = [
    # Qwen's own format
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>', ""),
    # closing tag missing at the very end (generation stopped there)
    ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}', ""),
    # prose before the call stays text
    ('Let me check.\n<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>',
     "Let me check."),
    # a fenced block inside the tag
    ('<tool_call>\n```json\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```\n</tool_call>', ""),
    # a bare JSON object
    ('{"name": "get_weather", "arguments": {"city": "Oslo"}}', ""),
    # a fenced block, as Qwen-0.5B writes it without tags
    ('```json\n{\n  "name": "get_weather",\n  "arguments": {\n    "city": "Oslo"\n  }\n}\n```', ""),
    # a fence without a language
    ('```\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n```', ""),
    # arguments as a JSON string (OpenAI's wire shape)
    ('{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}', ""),
    # "parameters" instead of "arguments"
    ('<tool_call>{"name": "get_weather", "parameters": {"city": "Oslo"}}</tool_call>', ""),
    # OpenAI's nested function shape
    ('{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}', ""),
    # trailing junk after the object
    ('{"name": "get_weather", "arguments": {"city": "Oslo"}}}', ""),
    # closing braces missing (stopped just before them)
    ('{"name": "get_weather", "arguments": {"city": "Oslo"', ""),
]


@pytest.mark.parametrize(("text", "rest"), LENIENT_SHAPES)
def test_lenient_parser_reads_a_call_in_every_shape_small_models_write(text: str, rest: str) -> None:
    calls, left = parse_tool_calls(text, NAMES)
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Oslo"})]
    assert left == rest


def test_lenient_parser_reads_several_calls_in_tags_lists_and_sequences() -> None:
    tagged = (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "A"}}</tool_call>\n'
        '<tool_call>{"name": "get_time", "arguments": {"zone": "UTC"}}</tool_call>'
    )
    listed = '[{"name": "get_weather", "arguments": {"city": "A"}}, {"name": "get_time", "arguments": {"zone": "UTC"}}]'
    sequence = '{"name": "get_weather", "arguments": {"city": "A"}}\n{"name": "get_time", "arguments": {"zone": "UTC"}}'
    for text in (tagged, listed, sequence):
        calls, rest = parse_tool_calls(text, NAMES)
        assert [c.name for c in calls] == ["get_weather", "get_time"], text
        assert rest == ""


def test_lenient_parser_ends_calls_where_the_model_starts_inventing_the_result() -> None:
    text = '{"name": "get_time", "arguments": {"zone": "UTC"}}\n{"datetime": "2025-01-01T12:00"}'
    calls, rest = parse_tool_calls(text, NAMES)
    assert [c.name for c in calls] == ["get_time"]
    assert rest == '{"datetime": "2025-01-01T12:00"}'


def test_without_repair_a_call_missing_its_closing_braces_is_not_complete() -> None:
    text = '{"name": "get_weather", "arguments": {"city": "Oslo"'
    assert parse_tool_calls(text, NAMES, repair=False) == ([], text)


@pytest.mark.parametrize(
    "text",
    [
        "The weather in Oslo is sunny.",
        '{"name": "Ada", "born": 1815}',  # JSON, but not a call of a known tool
        '{"name": "rm_rf", "arguments": {}}',  # unknown tool
        '{"name": "get_weather", "arguments": [1, 2]}',  # arguments not an object
        '{"name": "get_weather", "arguments": "not json"}',
        "```python\nprint({'name': 'get_weather'})\n```",
        "Use the <tool_call> tag like this: <tool_call>name</tool_call>",
        "",
    ],
)
def test_lenient_parser_leaves_text_that_is_not_a_call_alone(text: str) -> None:
    assert parse_tool_calls(text, NAMES) == ([], text)


# --------------------------------------------------------------------------- splitter


def _split(pieces: list[str]) -> tuple[str, str, list[str]]:
    splitter = ToolCallSplitter(NAMES)
    shown = "".join(splitter.feed(p) for p in pieces)
    rest, calls = splitter.finish()
    return shown, rest, [c.name for c in calls]


def test_splitter_streams_plain_text_as_it_comes() -> None:
    splitter = ToolCallSplitter(NAMES)
    assert splitter.feed("Hello") == "Hello"
    assert splitter.feed(" world") == " world"
    assert splitter.finish() == ("", [])


def test_splitter_shows_text_before_a_tag_split_across_pieces_and_holds_the_call() -> None:
    pieces = ["Checking", " now <to", "ol_c", 'all>{"name": "get_weather", ',
              '"arguments": {"city": "Oslo"}}</tool_call>']
    assert _split(pieces) == ("Checking now ", "", ["get_weather"])


def test_splitter_releases_a_held_prefix_that_turned_out_not_to_be_a_tag() -> None:
    assert _split(["a <to", "y> b"]) == ("a <toy> b", "", [])
    assert _split(["ends with <tool"]) == ("ends with ", "<tool", [])


def test_splitter_holds_output_that_opens_with_json_or_a_fence() -> None:
    fence = ["  ```json\n", '{"name": "get_weather", ', '"arguments": {"city": "Oslo"}}\n```']
    assert _split(fence) == ("", "", ["get_weather"])
    assert _split(['{"name": "Ada"', ', "born": 1815}']) == ("", '{"name": "Ada", "born": 1815}', [])


def test_splitter_reports_only_calls_already_complete_in_the_held_text() -> None:
    splitter = ToolCallSplitter(NAMES)
    splitter.feed('<tool_call>{"name": "get_time", "arguments": {"zone": "UT')
    assert splitter.holding and splitter.complete_calls() == []
    splitter.feed('C"}}</tool_call>')
    assert [c.name for c in splitter.complete_calls()] == ["get_time"]


def test_splitter_keeps_prose_around_calls_as_text() -> None:
    pieces = ['<tool_call>{"name": "get_time", "arguments": {"zone": "UTC"}}</tool_call>', " done"]
    assert _split(pieces) == ("", "done", ["get_time"])
