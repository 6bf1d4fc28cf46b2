"""The OpenAI chat-completions dialect: request building, response / stream / error
parsing, and the reverse direction the gateway uses. Sans-I/O: bodies in, values out."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest

from tests.fakes import replies_openai as replies
from tests.fakes.server import FakeProvider, sse
from tollway.core.dialects.base import SSEEvent
from tollway.core.dialects.openai_chat import (
    DIALECT,
    OpenAIChatDialect,
    strict_schema,
)
from tollway.core.dialects.openai_interchange.codec import (
    request_from_openai,
    response_to_openai,
    stream_to_openai_chunks,
)
from tollway.core.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    ContextWindowExceededError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamError,
    TimeoutError,
    ToolArgumentsError,
)
from tollway.core.sse import SSEDecoder
from tollway.core.types import (
    Audio,
    File,
    FinishEvent,
    Image,
    Message,
    NamedTool,
    Reasoning,
    Request,
    Response,
    ResponseFormat,
    StreamAccumulator,
    StreamEvent,
    StreamStart,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolResult,
    Usage,
    UsageEvent,
)

MODEL = "gpt-4o-mini"


def body_of(
    request: Request, *, stream: bool = False, dialect: OpenAIChatDialect = DIALECT
) -> dict[str, Any]:
    return dialect.build_request(request, MODEL, stream=stream).json


def parse_stream(chunks: list[bytes] | str, request: Request | None = None) -> list[StreamEvent]:
    """Run raw SSE bytes through the real SSE decoder and the dialect's parser."""
    decoder = SSEDecoder()
    parser = DIALECT.stream_parser(request, MODEL)
    events: list[StreamEvent] = []
    pieces = [chunks] if isinstance(chunks, str) else chunks
    for piece in pieces:
        for sse_event in decoder.feed(piece):
            events.extend(parser.feed(sse_event))
    for sse_event in decoder.flush():
        events.extend(parser.feed(sse_event))
    events.extend(parser.close())
    return events


def accumulate(events: list[StreamEvent]) -> Response:
    acc = StreamAccumulator()
    for event in events:
        acc.add(event)
    return acc.response(provider=DIALECT.name, model=MODEL)


def chunk(delta: dict[str, Any], finish: str | None = None, **top: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **top,
    }


def completion(message: dict[str, Any], finish: str = "stop", **top: Any) -> dict[str, Any]:
    body = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    body.update(top)
    return body


# =========================================================================== build_request


def test_build_request_targets_chat_completions_with_model_and_string_contents() -> None:
    req = Request([Message.system("Be brief."), Message.user("Hi")])
    http = DIALECT.build_request(req, MODEL, stream=False)
    assert http.path == "/chat/completions"
    assert http.method == "POST"
    assert http.json == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
    }


def test_system_role_option_sends_developer_for_o_series_models() -> None:
    dialect = OpenAIChatDialect(system_role="developer")
    body = body_of(Request([Message.system("Rules"), Message.user("Hi")]), dialect=dialect)
    assert body["messages"][0] == {"role": "developer", "content": "Rules"}


@pytest.mark.parametrize("field", ["max_completion_tokens", "max_tokens"])
def test_max_tokens_goes_in_the_configured_field_only(field: str) -> None:
    dialect = OpenAIChatDialect(max_tokens_field=field)  # type: ignore[arg-type]
    body = body_of(Request([Message.user("Hi")], max_tokens=128), dialect=dialect)
    assert body[field] == 128
    other = {"max_completion_tokens", "max_tokens"} - {field}
    assert not other & body.keys()


def test_user_media_parts_are_encoded_as_openai_content_parts() -> None:
    parts = [
        Text("Describe these."),
        Image(data=b"\x89PNG", media_type="image/png", detail="high"),
        Image(url="https://example.com/cat.jpg"),
        Audio(data=b"RIFF", media_type="audio/wav"),
        Audio(data=b"ID3", media_type="audio/mpeg"),
        File(data=b"%PDF-", media_type="application/pdf", filename="report.pdf"),
        File(data=b"%PDF-", media_type="application/pdf"),
        File(file_id="file-abc123"),
    ]
    content = body_of(Request([Message.user(parts)]))["messages"][0]["content"]
    assert content == [
        {"type": "text", "text": "Describe these."},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64,iVBORw==", "detail": "high"},
        },
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
        {
            "type": "file",
            "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
        },
        {
            "type": "file",
            "file": {"filename": "file.pdf", "file_data": "data:application/pdf;base64,JVBERi0="},
        },
        {"type": "file", "file": {"file_id": "file-abc123"}},
    ]


@pytest.mark.parametrize(
    ("part", "needle"),
    [
        (Audio(url="https://example.com/a.wav"), "base64"),
        (File(url="https://example.com/a.pdf"), "file_id"),
    ],
)
def test_media_by_remote_url_that_chat_completions_cannot_fetch_is_a_bad_request(
    part: Audio | File, needle: str
) -> None:
    with pytest.raises(BadRequestError, match=needle):
        body_of(Request([Message.user([Text("x"), part])]))


def test_media_in_a_system_message_is_rejected_with_a_fix() -> None:
    with pytest.raises(BadRequestError, match="user message"):
        body_of(Request([Message("system", [Image(url="https://x/y.png")])]))


def test_tool_call_in_a_user_message_is_rejected() -> None:
    with pytest.raises(BadRequestError, match="assistant"):
        body_of(Request([Message.user([ToolCall.from_arguments("c1", "f", {})])]))


def test_assistant_tool_call_arguments_are_sent_verbatim() -> None:
    raw = '{"city":  "Paris" ,"days":3}'
    msg = Message.assistant([Text("Checking."), ToolCall.from_raw("call_1", "weather", raw)])
    sent = body_of(Request([Message.user("x"), msg]))["messages"][1]
    assert sent == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": raw}}
        ],
    }


def test_assistant_with_only_tool_calls_sends_null_content() -> None:
    msg = Message.assistant([ToolCall.from_arguments("call_1", "now", {})])
    sent = body_of(Request([Message.user("x"), msg]))["messages"][1]
    assert sent["content"] is None
    assert sent["tool_calls"][0]["function"]["arguments"] == "{}"


def test_thinking_is_not_sent_by_default() -> None:
    msg = Message.assistant(
        [
            Thinking(
                "hmm",
                provider="openai_chat",
                provider_data={"openai_chat": {"field": "reasoning_content"}},
            ),
            Text("4"),
        ]
    )
    sent = body_of(Request([Message.user("2+2?"), msg]))["messages"][1]
    assert sent == {"role": "assistant", "content": "4"}


def test_echo_reasoning_sends_own_thinking_back_in_its_field_but_not_other_providers() -> None:
    dialect = OpenAIChatDialect(echo_reasoning=True)
    own = Thinking(
        "step 1", provider="openai_chat", provider_data={"openai_chat": {"field": "reasoning"}}
    )
    foreign = Thinking("secret", signature="sig", provider="anthropic")
    msg = Message.assistant([foreign, own, Text("done")])
    sent = body_of(Request([Message.user("q"), msg]), dialect=dialect)["messages"][1]
    assert sent == {"role": "assistant", "content": "done", "reasoning": "step 1"}


def test_thinking_marked_echo_in_provider_data_is_sent_without_the_dialect_option() -> None:
    part = Thinking("because", provider_data={"openai_chat": {"echo": True}})
    sent = body_of(Request([Message.user("q"), Message.assistant([part, Text("a")])]))["messages"][
        1
    ]
    assert sent["reasoning_content"] == "because"


def test_each_tool_result_becomes_its_own_tool_message_in_order() -> None:
    results = Message(
        "user",
        [ToolResult("call_1", "sunny"), ToolResult("call_2", [Text("12"), Text(":00")])],
    )
    messages = body_of(Request([Message.user("q"), results]))["messages"]
    assert messages[1:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {
            "role": "tool",
            "tool_call_id": "call_2",
            "content": [{"type": "text", "text": "12"}, {"type": "text", "text": ":00"}],
        },
    ]


def test_tool_returned_images_follow_the_whole_run_of_tool_messages_in_a_user_message() -> None:
    history = [
        Message.user("show me"),
        Message.assistant(
            [ToolCall.from_arguments("c1", "shot", {}), ToolCall.from_arguments("c2", "now", {})]
        ),
        Message.tool("c1", [Text("here"), Image(url="https://x/s.png")]),
        Message.tool("c2", "12:00"),
        Message.user("and?"),
    ]
    messages = body_of(Request(history))["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "user", "user"]
    assert messages[2]["content"] == [{"type": "text", "text": "here"}]
    attachments = messages[4]["content"]
    assert attachments[0]["type"] == "text" and "c1" in attachments[0]["text"]
    assert attachments[1] == {"type": "image_url", "image_url": {"url": "https://x/s.png"}}


def test_tools_are_function_specs_without_empty_descriptions() -> None:
    params = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    tools = [Tool("search", "Search the web.", params), Tool("now")]
    body = body_of(Request([Message.user("x")], tools=tools))
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "search", "description": "Search the web.", "parameters": params},
        },
        {
            "type": "function",
            "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
        },
    ]


NESTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "default": None},
        "tags": {
            "type": "array",
            "items": {"type": "object", "properties": {"k": {"type": "string"}}},
        },
        "address": {"$ref": "#/$defs/Address", "description": "where"},
        "kind": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "mode": {"type": "string", "enum": ["a", "b"]},
    },
    "required": ["name"],
    "$defs": {
        "Address": {
            "type": "object",
            "properties": {"street": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["street"],
            "additionalProperties": True,
        }
    },
}


def test_strict_tool_schema_makes_every_object_closed_and_optional_fields_nullable() -> None:
    original = copy.deepcopy(NESTED_SCHEMA)
    body = body_of(
        Request([Message.user("x")], tools=[Tool("save", "", NESTED_SCHEMA, strict=True)])
    )
    fn = body["tools"][0]["function"]
    assert fn["strict"] is True
    schema = fn["parameters"]
    assert original == NESTED_SCHEMA, "the caller's schema must not be modified"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name", "age", "tags", "address", "kind", "mode"]
    props = schema["properties"]
    assert props["name"] == {"type": "string"}
    assert props["age"] == {"type": ["integer", "null"]}  # default None dropped
    assert props["tags"]["type"] == ["array", "null"]
    item = props["tags"]["items"]
    assert item["additionalProperties"] is False and item["required"] == ["k"]
    assert item["properties"]["k"] == {"type": ["string", "null"]}
    assert props["address"] == {
        "description": "where",
        "anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}],
    }
    assert props["kind"]["anyOf"][-1] == {"type": "null"}
    assert props["mode"] == {"type": ["string", "null"], "enum": ["a", "b", None]}
    address = schema["$defs"]["Address"]
    assert address["additionalProperties"] is False
    assert address["required"] == ["street", "zip"]
    assert address["properties"]["zip"] == {"type": ["string", "null"]}


def test_strict_schema_leaves_an_already_strict_schema_unchanged() -> None:
    once = strict_schema(NESTED_SCHEMA)
    assert strict_schema(once) == once
    already = {
        "type": "object",
        "properties": {"path": {"type": "string"}},
        "required": ["path"],
        "additionalProperties": False,
    }
    assert strict_schema(already) == already


def test_non_strict_tool_schema_is_sent_as_given() -> None:
    tool = Tool("save", "", NESTED_SCHEMA, strict=False)
    fn = body_of(Request([Message.user("x")], tools=[tool]))["tools"][0]["function"]
    assert fn["parameters"] == NESTED_SCHEMA
    assert fn["strict"] is False


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        (NamedTool("now"), {"type": "function", "function": {"name": "now"}}),
    ],
)
def test_tool_choice_modes_and_named_tool(choice: Any, wire: Any) -> None:
    body = body_of(Request([Message.user("x")], tools=[Tool("now")], tool_choice=choice))
    assert body["tool_choice"] == wire


def test_named_tool_choice_for_an_unknown_tool_is_a_bad_request_naming_it() -> None:
    with pytest.raises(BadRequestError, match="'later'"):
        body_of(Request([Message.user("x")], tools=[Tool("now")], tool_choice=NamedTool("later")))


def test_tool_choice_without_tools_is_dropped_when_harmless_and_rejected_when_it_forces() -> None:
    assert "tool_choice" not in body_of(Request([Message.user("x")], tool_choice="auto"))
    with pytest.raises(BadRequestError, match="needs tools"):
        body_of(Request([Message.user("x")], tool_choice="required"))


def test_parallel_tool_calls_is_only_sent_with_tools() -> None:
    with_tools = body_of(
        Request([Message.user("x")], tools=[Tool("now")], parallel_tool_calls=False)
    )
    assert with_tools["parallel_tool_calls"] is False
    assert "parallel_tool_calls" not in body_of(
        Request([Message.user("x")], parallel_tool_calls=False)
    )


def test_strict_response_format_is_a_json_schema_with_the_strict_conversion() -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "pop": {"type": "integer"}},
        "required": ["city"],
    }
    fmt = ResponseFormat(schema=schema, name="City", strict=True, description="a city")
    body = body_of(Request([Message.user("x")], response_format=fmt))
    spec = body["response_format"]["json_schema"]
    assert body["response_format"]["type"] == "json_schema"
    assert spec["name"] == "City" and spec["strict"] is True and spec["description"] == "a city"
    assert spec["schema"]["required"] == ["city", "pop"]
    assert spec["schema"]["properties"]["pop"] == {"type": ["integer", "null"]}
    assert spec["schema"]["additionalProperties"] is False


def test_non_strict_and_json_object_response_formats() -> None:
    loose = ResponseFormat(schema={"type": "object"}, name="r", strict=False)
    spec = body_of(Request([Message.user("x")], response_format=loose))["response_format"]
    assert spec == {
        "type": "json_schema",
        "json_schema": {"name": "r", "schema": {"type": "object"}, "strict": False},
    }
    any_json = body_of(Request([Message.user("x")], response_format=ResponseFormat(schema=None)))
    assert any_json["response_format"] == {"type": "json_object"}


def test_sampling_stop_seed_and_reasoning_effort_are_sent() -> None:
    req = Request(
        [Message.user("x")],
        temperature=0.0,
        top_p=0.5,
        stop=["END"],
        seed=7,
        reasoning=Reasoning(effort="low", budget_tokens=2000),
    )
    body = body_of(req)
    assert (body["temperature"], body["top_p"], body["stop"], body["seed"]) == (
        0.0,
        0.5,
        ["END"],
        7,
    )
    assert body["reasoning_effort"] == "low"
    assert "reasoning" not in body and "budget_tokens" not in json.dumps(body)


def test_stream_asks_for_usage_unless_the_server_cannot() -> None:
    req = Request([Message.user("x")])
    assert body_of(req, stream=True)["stream_options"] == {"include_usage": True}
    assert body_of(req, stream=True)["stream"] is True
    plain = body_of(req, stream=True, dialect=OpenAIChatDialect(supports_stream_usage=False))
    assert plain["stream"] is True and "stream_options" not in plain
    assert "stream" not in body_of(req, stream=False)


def test_extra_is_deep_merged_and_extra_headers_are_sent() -> None:
    req = Request(
        [Message.user("x")],
        temperature=0.3,
        extra={
            "stream_options": {"continuous_usage_stats": True},
            "temperature": 1.0,
            "user": "u1",
        },
        extra_headers={"OpenAI-Beta": "assistants=v2"},
    )
    http = DIALECT.build_request(req, MODEL, stream=True)
    assert http.json["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert http.json["temperature"] == 1.0
    assert http.json["user"] == "u1"
    assert http.headers == {"OpenAI-Beta": "assistants=v2"}
    assert req.extra["stream_options"] == {"continuous_usage_stats": True}, (
        "extra must not be mutated"
    )


# =========================================================================== parse_response


def test_parse_text_response_fills_id_model_usage_and_metadata() -> None:
    body = completion(
        {"content": "Hello!", "refusal": None, "annotations": []},
        system_fingerprint="fp_1",
        service_tier="default",
        usage={
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0},
        },
    )
    resp = DIALECT.parse_response(body, None, MODEL)
    assert resp.id == "chatcmpl-9"
    assert resp.model == "gpt-4o-mini-2024-07-18"
    assert resp.provider == "openai_chat"
    assert resp.parts == [Text("Hello!")]
    assert resp.finish_reason == "stop"
    assert resp.usage == Usage(
        input_tokens=1200, output_tokens=300, cache_read_tokens=1024, reasoning_tokens=256
    )
    assert resp.provider_data == {
        "openai_chat": {
            "system_fingerprint": "fp_1",
            "service_tier": "default",
            "created": 1700000000,
        }
    }


def test_parse_falls_back_to_the_requested_model_and_zero_usage() -> None:
    body = {
        "choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]
    }
    resp = DIALECT.parse_response(body, None, "local-llama")
    assert resp.model == "local-llama"
    assert resp.usage == Usage()


def test_parse_tool_calls_keeps_the_raw_argument_string() -> None:
    raw = '{"path": ".env"}'
    body = completion(
        {
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "delete", "arguments": raw},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "create", "arguments": "{}"},
                },
            ],
        },
        finish="tool_calls",
    )
    resp = DIALECT.parse_response(body, None, MODEL)
    assert resp.finish_reason == "tool_calls"
    assert resp.parts == [
        ToolCall("call_a", "delete", {"path": ".env"}, raw),
        ToolCall("call_b", "create", {}, "{}"),
    ]


def test_invalid_tool_arguments_are_kept_raw_and_fail_typed_on_parse() -> None:
    body = completion(
        {
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": '}}
            ]
        },
        finish="tool_calls",
    )
    call = DIALECT.parse_response(body, None, MODEL).tool_calls[0]
    assert call.raw_arguments == '{"a": ' and call.arguments == {}
    with pytest.raises(ToolArgumentsError):
        call.parse_arguments()


def test_object_arguments_from_compatible_servers_are_accepted() -> None:
    body = completion(
        {"tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {"x": 1}}}]},
        finish="tool_calls",
    )
    call = DIALECT.parse_response(body, None, MODEL).tool_calls[0]
    assert call.arguments == {"x": 1} and json.loads(call.raw_arguments) == {"x": 1}


def test_legacy_function_call_is_a_tool_call() -> None:
    body = completion(
        {"function_call": {"name": "f", "arguments": '{"q":1}'}}, finish="function_call"
    )
    resp = DIALECT.parse_response(body, None, MODEL)
    assert resp.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in resp.tool_calls] == [("f", {"q": 1})]


def test_refusal_is_a_marked_text_part_and_finishes_as_content_filter() -> None:
    body = completion({"content": None, "refusal": "I can't help with that."})
    resp = DIALECT.parse_response(body, None, MODEL)
    assert resp.parts == [Text("I can't help with that.", {"openai_chat": {"refusal": True}})]
    assert resp.finish_reason == "content_filter"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_from_compatible_servers_is_a_thinking_part_first(field: str) -> None:
    body = completion({"content": "42", field: "Let me think."})
    resp = DIALECT.parse_response(body, None, MODEL)
    assert resp.parts == [
        Thinking(
            "Let me think.", provider="openai_chat", provider_data={"openai_chat": {"field": field}}
        ),
        Text("42"),
    ]
    assert resp.thinking == "Let me think."


@pytest.mark.parametrize(
    ("raw", "calls", "expected"),
    [
        ("stop", False, "stop"),
        ("length", False, "length"),
        ("tool_calls", True, "tool_calls"),
        ("function_call", True, "tool_calls"),
        ("content_filter", False, "content_filter"),
        ("eos", False, "stop"),
        (None, False, "stop"),
        ("stop", True, "tool_calls"),  # forced named tool: OpenAI says stop
    ],
)
def test_finish_reason_mapping(raw: str | None, calls: bool, expected: str) -> None:
    message: dict[str, Any] = {"content": "x"}
    if calls:
        message["tool_calls"] = [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]
    resp = DIALECT.parse_response(completion(message, finish=raw), None, MODEL)  # type: ignore[arg-type]
    assert resp.finish_reason == expected


def test_deepseek_cache_hit_tokens_count_as_cache_reads() -> None:
    usage = {
        "prompt_tokens": 900,
        "completion_tokens": 10,
        "prompt_cache_hit_tokens": 640,
        "prompt_cache_miss_tokens": 260,
    }
    resp = DIALECT.parse_response(completion({"content": "x"}, usage=usage), None, MODEL)
    assert (resp.usage.input_tokens, resp.usage.cache_read_tokens) == (900, 640)


def test_cache_write_tokens_are_a_subset_of_input() -> None:
    usage = {
        "prompt_tokens": 4020,
        "completion_tokens": 4,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 4012},
    }
    resp = DIALECT.parse_response(completion({"content": "x"}, usage=usage), None, MODEL)
    assert resp.usage.cache_write_tokens == 4012 and resp.usage.uncached_input_tokens == 8


def test_error_object_in_a_200_body_raises_the_typed_error() -> None:
    body = {
        "error": {
            "message": "This model's maximum context length is 8192 tokens.",
            "code": "context_length_exceeded",
        }
    }
    with pytest.raises(ContextWindowExceededError) as info:
        DIALECT.parse_response(body, None, MODEL)
    assert info.value.code == "context_length_exceeded"


def test_a_body_without_choices_is_a_retryable_server_error() -> None:
    with pytest.raises(ServerError, match="no choices"):
        DIALECT.parse_response({"id": "x", "choices": []}, None, MODEL)


def test_response_format_of_the_request_makes_parsed_available() -> None:
    fmt = ResponseFormat(schema={"type": "object"})
    req = Request([Message.user("x")], response_format=fmt)
    resp = DIALECT.parse_response(completion({"content": '{"city": "Paris"}'}), req, MODEL)
    assert resp.response_format is fmt
    assert resp.parsed == {"city": "Paris"}


# =========================================================================== streams


def test_text_stream_accumulates_to_what_the_plain_reply_parses_to() -> None:
    usage = Usage(
        input_tokens=2048, output_tokens=300, cache_read_tokens=1920, reasoning_tokens=192
    )
    events = parse_stream(replies.text_stream(["Hel", "lo", " world"], usage=usage).chunks or [])
    assert isinstance(events[0], StreamStart) and events[0].id and events[0].model == replies.MODEL
    assert sum(isinstance(e, StreamStart) for e in events) == 1
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo", " world"]
    streamed = accumulate(events)
    plain = DIALECT.parse_response(replies.text_reply("Hello world", usage=usage).body, None, MODEL)  # type: ignore[arg-type]
    assert streamed.parts == plain.parts
    assert (streamed.finish_reason, streamed.usage, streamed.model) == (
        plain.finish_reason,
        plain.usage,
        plain.model,
    )


def test_parallel_tool_call_deltas_group_by_index_with_id_and_name_first() -> None:
    calls = [("get_weather", {"city": "Mexico City"}), ("get_product_name", {})]
    events = parse_stream(replies.tool_call_stream(calls).chunks or [])
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    firsts = [d for d in deltas if d.id]
    assert [(d.index, d.name) for d in firsts] == [(0, "get_weather"), (1, "get_product_name")]
    assert all(d.id is None and d.name is None for d in deltas if d not in firsts)
    streamed = accumulate(events)
    plain = DIALECT.parse_response(replies.tool_call_reply(calls).body, None, MODEL)  # type: ignore[arg-type]
    assert [(c.id, c.name, c.arguments) for c in streamed.tool_calls] == [
        (c.id, c.name, c.arguments) for c in plain.tool_calls
    ]
    assert streamed.finish_reason == plain.finish_reason == "tool_calls"
    assert streamed.usage == plain.usage


def test_keepalives_comments_role_only_and_empty_content_deltas_emit_nothing() -> None:
    raw = (
        ": keep-alive\n\n"
        "data: \n\n"
        + "".join(
            c.decode()
            for c in sse(
                chunk({"role": "assistant", "content": "", "refusal": None}),
                chunk({"content": None}),
                chunk({"content": "ok"}),
                chunk({}, "stop"),
            )
        )
        + "data: [DONE]\n\n"
        + 'data: {"late": true}\n\n'
    )
    events = parse_stream(raw)
    assert [type(e).__name__ for e in events] == ["StreamStart", "TextDelta", "FinishEvent"]


def test_final_usage_only_chunk_with_empty_choices_gives_usage_totals() -> None:
    usage = {
        "prompt_tokens": 364,
        "completion_tokens": 40,
        "total_tokens": 404,
        "prompt_tokens_details": {"cached_tokens": 128},
        "completion_tokens_details": {"reasoning_tokens": 16},
    }
    events = parse_stream(
        sse(
            chunk({"content": "a"}),
            chunk({}, "stop"),
            {**chunk({}), "choices": [], "usage": usage},
            "[DONE]",
        )
    )
    usage_events = [e for e in events if isinstance(e, UsageEvent)]
    assert usage_events == [
        UsageEvent(
            Usage(input_tokens=364, output_tokens=40, cache_read_tokens=128, reasoning_tokens=16)
        )
    ]


def test_reasoning_content_deltas_become_thinking() -> None:
    events = parse_stream(
        sse(
            chunk({"role": "assistant", "reasoning_content": "Think"}),
            chunk({"reasoning_content": "ing."}),
            chunk({"content": "Answer"}),
            chunk({}, "stop"),
        )
    )
    assert [e.text for e in events if isinstance(e, ThinkingDelta)] == ["Think", "ing."]
    resp = accumulate(events)
    assert resp.parts == [
        Thinking(
            "Thinking.",
            provider="openai_chat",
            provider_data={"openai_chat": {"field": "reasoning_content"}},
        ),
        Text("Answer"),
    ]
    assert (
        resp.parts
        == DIALECT.parse_response(
            completion({"content": "Answer", "reasoning_content": "Thinking."}), None, MODEL
        ).parts
    )


def test_refusal_deltas_accumulate_like_a_parsed_refusal() -> None:
    events = parse_stream(
        sse(
            chunk({"refusal": "I can't"}),
            chunk({"refusal": " do that."}),
            chunk({}, "stop"),
            "[DONE]",
        )
    )
    streamed = accumulate(events)
    plain = DIALECT.parse_response(
        completion({"content": None, "refusal": "I can't do that."}), None, MODEL
    )
    assert streamed.parts == plain.parts
    assert streamed.finish_reason == plain.finish_reason == "content_filter"


def test_tool_calls_without_index_from_compatible_servers_stay_separate() -> None:
    events = parse_stream(
        sse(
            chunk({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": '{"x":1}'}}]}),
            chunk({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "{}"}}]}),
            chunk({}, "stop"),
        )
    )
    resp = accumulate(events)
    assert [(c.id, c.name, c.arguments) for c in resp.tool_calls] == [
        ("a", "f", {"x": 1}),
        ("b", "g", {}),
    ]
    assert resp.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (
            {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"},
            RateLimitError,
        ),
        ({"message": "The server had an error", "type": "server_error", "code": None}, ServerError),
        ({"message": "Upstream said no", "code": 403}, PermissionDeniedError),
        ({"message": "prompt flagged", "code": "content_filter"}, ContentFilterError),
    ],
)
def test_error_payload_mid_stream_raises_the_typed_error(
    error: dict[str, Any], kind: type[ProviderError]
) -> None:
    decoder_events = [
        SSEEvent(json.dumps(chunk({"content": "par"}))),
        SSEEvent(json.dumps({"error": error})),
    ]
    parser = DIALECT.stream_parser(None, MODEL)
    parser.feed(decoder_events[0])
    with pytest.raises(kind) as info:
        parser.feed(decoder_events[1])
    assert type(info.value) is kind


def test_malformed_json_chunk_is_a_stream_error_naming_the_problem() -> None:
    parser = DIALECT.stream_parser(None, MODEL)
    with pytest.raises(StreamError, match="not valid JSON"):
        parser.feed(SSEEvent('{"id": "x", "choices": [{'))
    with pytest.raises(StreamError, match="JSON object"):
        DIALECT.stream_parser(None, MODEL).feed(SSEEvent("[1, 2]"))


def test_stream_cut_before_finish_and_done_is_a_stream_error() -> None:
    parser = DIALECT.stream_parser(None, MODEL)
    parser.feed(SSEEvent(json.dumps(chunk({"content": "The answer is"}))))
    with pytest.raises(StreamError, match="ended before"):
        parser.close()


@pytest.mark.parametrize(
    "tail",
    [[chunk({}, "length")], ["[DONE]"]],
    ids=["finish-chunk-only", "done-only"],
)
def test_stream_with_either_terminal_signal_closes_cleanly(tail: list[Any]) -> None:
    events = parse_stream(sse(chunk({"content": "x"}), *tail))
    finish = [e for e in events if isinstance(e, FinishEvent)]
    assert [f.finish_reason for f in finish] == (["length"] if "[DONE]" not in tail else [])


def test_stream_start_carries_fingerprint_and_tier() -> None:
    events = parse_stream(
        sse(
            chunk({"content": "x"}, system_fingerprint="fp_9", service_tier="flex"),
            chunk({}, "stop"),
        )
    )
    start = events[0]
    assert isinstance(start, StreamStart)
    assert start.provider_data == {
        "openai_chat": {"system_fingerprint": "fp_9", "service_tier": "flex", "created": 1}
    }


# =========================================================================== parse_error


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (408, TimeoutError),
        (422, BadRequestError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_http_status_maps_to_the_error_class(status: int, kind: type[ProviderError]) -> None:
    reply = replies.error_reply(status, "something went wrong")
    err = DIALECT.parse_error(status, json.dumps(reply.body), reply.headers)
    assert type(err) is kind
    assert err.status == status
    assert "something went wrong" in str(err)


def test_error_code_and_raw_body_are_kept() -> None:
    body = {
        "error": {
            "code": "model_not_found",
            "message": "The model `gpt-9` does not exist",
            "type": "invalid_request_error",
            "param": None,
        }
    }
    err = DIALECT.parse_error(404, json.dumps(body).encode(), {})
    assert isinstance(err, NotFoundError)
    assert err.code == "model_not_found"
    assert err.body is not None and "gpt-9" in err.body


@pytest.mark.parametrize(
    "error",
    [
        {
            "message": "Request too large.",
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        },
        {
            "message": "This model's maximum context length is 8192 tokens. However, your "
            "messages resulted in 9000 tokens.",
            "type": "invalid_request_error",
            "code": None,
        },
        {
            "message": "Input validation error: `inputs` tokens + `max_new_tokens` must be "
            "<= 4096. Too many tokens requested",
            "code": 400,
        },
    ],
    ids=["code", "openai-message", "tgi-message"],
)
def test_context_window_errors_are_detected_by_code_or_message(error: dict[str, Any]) -> None:
    err = DIALECT.parse_error(400, json.dumps({"error": error}), {})
    assert isinstance(err, ContextWindowExceededError)
    assert "shorten the prompt" in str(err)


@pytest.mark.parametrize(
    "error",
    [
        {
            "message": "Your request was rejected as a result of our safety system.",
            "code": "content_policy_violation",
            "type": "invalid_request_error",
        },
        {
            "message": "The response was filtered due to the prompt triggering Azure "
            "OpenAI's content management policy.",
            "code": "content_filter",
            "status": 400,
        },
    ],
)
def test_content_policy_errors_are_content_filter_errors(error: dict[str, Any]) -> None:
    assert isinstance(
        DIALECT.parse_error(400, json.dumps({"error": error}), {}), ContentFilterError
    )


def test_insufficient_quota_429_is_a_rate_limit_error_whose_code_says_so() -> None:
    reply = replies.error_reply(
        429,
        "You exceeded your current quota.",
        code="insufficient_quota",
        type="insufficient_quota",
    )
    err = DIALECT.parse_error(429, json.dumps(reply.body), {})
    assert isinstance(err, RateLimitError)
    assert err.code == "insufficient_quota"
    assert "out of quota" in str(err)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        (
            {
                "retry-after": "Wed, 21 Oct 2015 07:28:30 GMT",
                "date": "Wed, 21 Oct 2015 07:28:00 GMT",
            },
            30.0,
        ),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, 0.0),  # already past
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_rate_limit_retry_after_from_headers(
    headers: dict[str, str], seconds: float | None
) -> None:
    err = DIALECT.parse_error(
        429, '{"error": {"message": "slow down", "code": "rate_limit_exceeded"}}', headers
    )
    assert isinstance(err, RateLimitError)
    assert err.retry_after == seconds


def test_retry_after_http_date_from_the_fake_is_about_thirty_seconds() -> None:
    reply = replies.error_reply(429, "slow down", retry_after="date")
    err = DIALECT.parse_error(429, json.dumps(reply.body), reply.headers)
    assert isinstance(err, RateLimitError) and err.retry_after is not None
    assert 25 <= err.retry_after <= 31


def test_html_error_page_still_gets_the_right_class_and_body() -> None:
    html = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    err = DIALECT.parse_error(502, html, {"content-type": "text/html"})
    assert isinstance(err, ServerError)
    assert err.status == 502 and err.body is not None and "Bad Gateway" in err.body
    assert "not an OpenAI error object" in str(err)


def test_compatible_server_error_shapes_are_understood() -> None:
    ollama = DIALECT.parse_error(
        404, '{"error": "model \\"llama9\\" not found, try pulling it first"}', {}
    )
    assert isinstance(ollama, NotFoundError) and "llama9" in str(ollama)
    gemini_compat = DIALECT.parse_error(
        400, '[{"error": {"code": 400, "message": "bad field", "status": "INVALID_ARGUMENT"}}]', {}
    )
    assert isinstance(gemini_compat, BadRequestError) and "bad field" in str(gemini_compat)


def test_error_messages_never_echo_an_api_key() -> None:
    body = {
        "error": {
            "message": "Incorrect API key provided: sk-proj-abcdef1234567890XYZ.",
            "code": "invalid_api_key",
        }
    }
    err = DIALECT.parse_error(401, json.dumps(body), {})
    assert isinstance(err, AuthenticationError)
    assert "abcdef1234567890" not in str(err) and "abcdef1234567890" not in (err.body or "")


# =========================================================================== reverse direction

FULL_BODY: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look at these."},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
                },
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {
                    "type": "file",
                    "file": {
                        "filename": "a.pdf",
                        "file_data": "data:application/pdf;base64,JVBERi0=",
                    },
                },
                {"type": "file", "file": {"file_id": "file-abc"}},
                {
                    "type": "text",
                    "text": "cache me",
                    "prompt_cache_breakpoint": {"mode": "explicit"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": "Calling.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "cats" }'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "found 3"},
        {
            "role": "tool",
            "tool_call_id": "call_2",
            "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        },
        {"role": "user", "content": "thanks", "name": "alice"},
        {"role": "assistant", "content": None, "refusal": "I can't."},
        {"role": "user", "content": "ok"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Find things.",
                "parameters": {
                    "type": "object",
                    "properties": {"q": {"type": "string"}},
                    "required": ["q"],
                    "additionalProperties": False,
                },
                "strict": True,
            },
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "lookup"}},
    "response_format": {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "schema": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    },
    "temperature": 0.2,
    "top_p": 0.9,
    "max_completion_tokens": 300,
    "stop": ["END"],
    "seed": 7,
    "parallel_tool_calls": False,
    "reasoning_effort": "low",
    "stream": True,
    "stream_options": {"include_usage": True},
    "n": 1,
    "user": "u-1",
    "metadata": {"team": "a"},
}


def test_openai_body_round_trips_through_the_canonical_request() -> None:
    model, request, stream = request_from_openai(FULL_BODY)
    assert (model, stream) == ("gpt-4o", True)
    assert request.extra == {"n": 1, "user": "u-1", "metadata": {"team": "a"}}
    rebuilt = DIALECT.build_request(request, model, stream=stream).json
    assert rebuilt == FULL_BODY


def test_request_from_openai_reads_every_canonical_field() -> None:
    _, request, _ = request_from_openai(FULL_BODY)
    assert [m.role for m in request.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "user",
        "assistant",
        "user",
    ]
    user_parts = request.messages[1].parts
    assert [type(p).__name__ for p in user_parts] == [
        "Text",
        "Image",
        "Image",
        "Audio",
        "File",
        "File",
        "Text",
    ]
    assert user_parts[2] == Image(data=b"\x89PNG\r\n\x1a\n", media_type="image/png")
    assert request.messages[2].tool_calls[0].raw_arguments == '{"q": "cats" }'
    assert request.tool_choice == NamedTool("lookup")
    assert request.response_format is not None and request.response_format.name == "answer"
    assert request.reasoning == Reasoning(effort="low")
    assert (request.max_tokens, request.stop, request.seed) == (300, ["END"], 7)


def test_request_from_openai_accepts_legacy_max_tokens_and_string_stop() -> None:
    _, request, stream = request_from_openai(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 50,
            "stop": "X",
        }
    )
    assert (request.max_tokens, request.stop, stream) == (50, ["X"], False)


def test_client_reasoning_content_is_passed_on_to_openai_compatible_servers() -> None:
    body = {
        "model": "deepseek-chat",
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a", "reasoning_content": "thought"},
            {"role": "user", "content": "q2"},
        ],
    }
    model, request, _ = request_from_openai(body)
    assert DIALECT.build_request(request, model, stream=False).json == body


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "robot"),
    ],
)
def test_request_from_openai_rejects_bodies_it_cannot_use(
    body: dict[str, Any], needle: str
) -> None:
    with pytest.raises(BadRequestError, match=needle):
        request_from_openai(body)


def test_response_round_trips_through_openai_json() -> None:
    body = completion(
        {
            "content": "Here.",
            "reasoning_content": "Plan.",
            "tool_calls": [
                {
                    "id": "call_x",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"a": 1}'},
                }
            ],
        },
        finish="tool_calls",
        system_fingerprint="fp_2",
        usage={
            "prompt_tokens": 500,
            "completion_tokens": 80,
            "total_tokens": 580,
            "prompt_tokens_details": {"cached_tokens": 256},
            "completion_tokens_details": {"reasoning_tokens": 40},
        },
    )
    original = DIALECT.parse_response(body, None, MODEL)
    wire = response_to_openai(original)
    assert DIALECT.parse_response(wire, None, MODEL) == original
    assert wire["created"] == 1700000000 and wire["system_fingerprint"] == "fp_2"


def test_response_to_openai_writes_usage_details_and_a_refusal() -> None:
    response = Response(
        id="r1",
        model="claude-x",
        provider="anthropic",
        parts=[Text("No.", {"openai_chat": {"refusal": True}})],
        finish_reason="content_filter",
        usage=Usage(
            input_tokens=1000,
            output_tokens=100,
            cache_read_tokens=600,
            cache_write_tokens=300,
            reasoning_tokens=20,
        ),
    )
    wire = response_to_openai(response, created=5)
    assert wire["object"] == "chat.completion" and wire["created"] == 5
    assert wire["choices"][0]["message"] == {"role": "assistant", "content": None, "refusal": "No."}
    assert wire["choices"][0]["finish_reason"] == "content_filter"
    assert wire["usage"] == {
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "total_tokens": 1100,
        "prompt_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 300},
        "completion_tokens_details": {"reasoning_tokens": 20},
    }


def _feed_chunks(chunks: list[dict[str, Any]]) -> Response:
    parser = DIALECT.stream_parser(None, MODEL)
    events: list[StreamEvent] = []
    for c in chunks:
        events.extend(parser.feed(SSEEvent(json.dumps(c))))
    events.extend(parser.feed(SSEEvent("[DONE]")))
    events.extend(parser.close())
    return accumulate(events)


def test_canonical_stream_events_become_openai_chunks_that_parse_back_to_the_same_response() -> (
    None
):
    # Anthropic-style events: thinking, text, then tool calls at content-block indexes 2 and 5.
    events: list[StreamEvent] = [
        StreamStart("msg_1", "claude-x"),
        ThinkingDelta("Hmm.", block=0, provider="anthropic"),
        TextDelta("Let me check.", block=1),
        ToolCallDelta(2, "toolu_a", "weather", ""),
        ToolCallDelta(2, None, None, '{"city": '),
        ToolCallDelta(5, "toolu_b", "time", "{}"),
        ToolCallDelta(2, None, None, '"Oslo"}'),
        UsageEvent(
            Usage(input_tokens=900, output_tokens=70, cache_read_tokens=800, reasoning_tokens=10)
        ),
        FinishEvent("tool_calls"),
    ]
    chunks = list(stream_to_openai_chunks(events, id="chatcmpl-gw", model="claude-x", created=9))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    tool_deltas = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert [d["index"] for d in tool_deltas] == [0, 0, 1, 0]
    assert tool_deltas[0]["id"] == "toolu_a" and "id" not in tool_deltas[1]
    assert (
        chunks[-1]["choices"] == []
        and chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 800
    )
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    back = _feed_chunks(chunks)
    assert back.text == "Let me check."
    assert back.thinking == "Hmm."
    assert [(c.id, c.name, c.arguments) for c in back.tool_calls] == [
        ("toolu_a", "weather", {"city": "Oslo"}),
        ("toolu_b", "time", {}),
    ]
    assert back.finish_reason == "tool_calls"
    assert back.usage == Usage(
        input_tokens=900, output_tokens=70, cache_read_tokens=800, reasoning_tokens=10
    )


def test_openai_stream_survives_chunks_to_events_to_chunks() -> None:
    calls = [("get_weather", {"city": "Mexico City"}), ("now", {})]
    events = parse_stream(replies.tool_call_stream(calls).chunks or [])
    original = accumulate(events)
    chunks = list(stream_to_openai_chunks(events, id=original.id, model=original.model, created=1))
    back = _feed_chunks(chunks)
    assert (back.id, back.model, back.parts, back.finish_reason, back.usage) == (
        original.id,
        original.model,
        original.parts,
        original.finish_reason,
        original.usage,
    )


def test_stream_without_finish_event_still_ends_with_a_finish_chunk_and_no_usage_when_unknown() -> (
    None
):
    chunks = list(stream_to_openai_chunks([TextDelta("hi")], id="x", model="m", created=1))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)
    refusal = list(
        stream_to_openai_chunks(
            [TextDelta("No", 1, {"openai_chat": {"refusal": True}}), TextDelta(" way", 1)],
            id="x",
            model="m",
            created=1,
        )
    )
    assert [c["choices"][0]["delta"] for c in refusal[1:3]] == [
        {"refusal": "No"},
        {"refusal": " way"},
    ]


# =========================================================================== fakes


def test_fake_replies_are_served_over_real_http_and_parse() -> None:
    with FakeProvider() as fake:
        fake.add(
            replies.text_reply("pong"),
            replies.text_stream(["po", "ng"]),
            replies.error_reply(429, "slow", retry_after=2),
        )
        http = DIALECT.build_request(Request([Message.user("ping")]), MODEL, stream=False)
        with httpx.Client(base_url=fake.url) as client:
            plain = client.post(http.path, json=http.json)
            streamed = client.post(http.path, json=http.json)
            limited = client.post(http.path, json=http.json)
    assert DIALECT.parse_response(plain.json(), None, MODEL).text == "pong"
    assert accumulate(parse_stream([streamed.content])).usage == replies.DEFAULT_USAGE
    err = DIALECT.parse_error(limited.status_code, limited.content, limited.headers)
    assert isinstance(err, RateLimitError) and err.retry_after == 2.0
    assert fake.requests[0].path == "/chat/completions"
    assert fake.requests[0].json["messages"] == [{"role": "user", "content": "ping"}]


# ================================================================ compatible-server quirks


def test_azure_idless_prompt_filter_chunk_does_not_hide_the_completion_id() -> None:
    azure_first = {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
    }
    events = parse_stream(sse(azure_first, chunk({"content": "hi"}), chunk({}, "stop"), "[DONE]"))
    starts = [e for e in events if isinstance(e, StreamStart)]
    assert [(s.id, s.model) for s in starts] == [("chatcmpl-1", "gpt-4o-mini-2024-07-18")]
    assert accumulate(events).id == "chatcmpl-1"


def test_empty_string_finish_reason_is_not_a_finish() -> None:
    parser = DIALECT.stream_parser(None, MODEL)
    assert not any(
        isinstance(e, FinishEvent)
        for e in parser.feed(SSEEvent(json.dumps(chunk({"content": "a"}, ""))))
    )
    with pytest.raises(StreamError):
        parser.close()


def test_legacy_function_call_stream_is_one_tool_call() -> None:
    events = parse_stream(
        sse(
            chunk({"role": "assistant", "function_call": {"name": "lookup", "arguments": ""}}),
            chunk({"function_call": {"arguments": '{"q": '}}),
            chunk({"function_call": {"arguments": '"x"}'}}),
            chunk({}, "function_call"),
        )
    )
    resp = accumulate(events)
    assert [(c.name, c.arguments) for c in resp.tool_calls] == [("lookup", {"q": "x"})]
    assert resp.finish_reason == "tool_calls"


def test_mistral_style_content_chunks_are_read_as_text() -> None:
    body = completion(
        {"content": [{"type": "text", "text": "Bon"}, {"type": "text", "text": "jour"}]}
    )
    assert DIALECT.parse_response(body, None, MODEL).text == "Bonjour"
    events = parse_stream(
        sse(chunk({"content": [{"type": "text", "text": "Salut"}]}), chunk({}, "stop"))
    )
    assert accumulate(events).text == "Salut"


def test_a_tool_message_with_non_result_parts_is_rejected() -> None:
    with pytest.raises(BadRequestError, match="ToolResult"):
        body_of(
            Request([Message.user("q"), Message("tool", [ToolResult("c", "x"), Text("extra")])])
        )


def test_client_stream_options_other_than_include_usage_pass_through() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "tool", "tool_call_id": "c1", "content": "ok", "name": "lookup"}],
        "stream": True,
        "stream_options": {"include_usage": False, "include_obfuscation": False},
    }
    model, request, stream = request_from_openai(body)
    sent = DIALECT.build_request(request, model, stream=stream).json
    assert sent["stream_options"] == {"include_usage": True, "include_obfuscation": False}
    assert sent["messages"] == body["messages"]


def test_annotations_survive_the_response_round_trip() -> None:
    citation = {
        "type": "url_citation",
        "url_citation": {"url": "https://x", "start_index": 0, "end_index": 3, "title": "X"},
    }
    original = DIALECT.parse_response(
        completion({"content": "Yes", "annotations": [citation]}), None, MODEL
    )
    assert original.parts[0].provider_data == {"openai_chat": {"annotations": [citation]}}
    assert DIALECT.parse_response(response_to_openai(original), None, MODEL) == original


def test_assistant_turn_with_nothing_sendable_has_empty_string_content() -> None:
    msg = Message.assistant([Thinking("private", signature="s", provider="anthropic")])
    sent = body_of(Request([Message.user("q"), msg, Message.user("again")]))["messages"][1]
    assert sent == {"role": "assistant", "content": ""}


def test_dialect_is_hashable_so_the_provider_table_can_cache_instances() -> None:
    a = OpenAIChatDialect(max_tokens_field="max_tokens")
    assert hash(a) == hash(OpenAIChatDialect(max_tokens_field="max_tokens"))
    assert DIALECT.name == "openai_chat"
