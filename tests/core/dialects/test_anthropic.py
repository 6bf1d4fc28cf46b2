"""The Anthropic Messages API dialect: requests, responses, streams, errors, round trips."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pydantic
import pytest

from tests.fakes import replies_anthropic as fakes
from tests.fakes.server import FakeProvider, Reply
from tollway.core.dialects.anthropic import DIALECT, AnthropicDialect
from tollway.core.dialects.anthropic.errors import retry_after_seconds
from tollway.core.dialects.anthropic.models import (
    EFFORT_BUDGET_TOKENS,
    model_traits,
    model_version,
)
from tollway.core.dialects.anthropic.request import wire_tool_id
from tollway.core.dialects.base import SSEEvent
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
from tollway.core.inputs import build_request, to_messages
from tollway.core.sse import SSEDecoder
from tollway.core.types import (
    Audio,
    File,
    Image,
    Message,
    NamedTool,
    Reasoning,
    Request,
    Response,
    ResponseFormat,
    StreamAccumulator,
    StreamStart,
    Text,
    Thinking,
    ThinkingDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolResult,
    UsageEvent,
)

SONNET_45 = "claude-sonnet-4-5-20250929"
SONNET_35 = "claude-3-5-sonnet-20241022"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
WEATHER = Tool(
    "get_weather",
    "Weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def body_of(
    request: Request,
    model: str = SONNET_45,
    *,
    stream: bool = False,
    dialect: AnthropicDialect = DIALECT,
) -> dict[str, Any]:
    return dialect.build_request(request, model, stream=stream).json


def user(text: str) -> Request:
    return Request([Message.user(text)])


def events_of(reply: Reply) -> list[SSEEvent]:
    decoder = SSEDecoder()
    out: list[SSEEvent] = []
    for chunk in reply.chunks or ():
        out.extend(decoder.feed(chunk))
    return out + decoder.flush()


def collect(
    reply: Reply,
    request: Request | None = None,
    model: str = SONNET_45,
    dialect: AnthropicDialect = DIALECT,
) -> Response:
    parser = dialect.stream_parser(request, model)
    acc = StreamAccumulator()
    for event in events_of(reply):
        for item in parser.feed(event):
            acc.add(item)
    for item in parser.close():
        acc.add(item)
    return acc.response(provider="anthropic", model=model)


def feed_all(
    payloads: list[dict[str, Any]], request: Request | None = None, model: str = SONNET_45
) -> tuple[list[Any], Any]:
    parser = DIALECT.stream_parser(request, model)
    out: list[Any] = []
    for payload in payloads:
        out.extend(parser.feed(SSEEvent(json.dumps(payload), payload.get("type"))))
    return out, parser


def message_start(usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": SONNET_45,
            "content": [],
            "stop_reason": None,
            "usage": usage or {"input_tokens": 10, "output_tokens": 1},
        },
    }


def message_end(stop_reason: str = "end_turn", usage: dict[str, Any] | None = None) -> list[dict]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason},
            "usage": usage or {"output_tokens": 5},
        },
        {"type": "message_stop"},
    ]


# =========================================================================== request basics


def test_request_goes_to_messages_with_version_header_and_no_beta_by_default():
    http = DIALECT.build_request(user("hi"), SONNET_45, stream=False)
    assert http.path == "/messages"
    assert http.method == "POST"
    assert http.headers == {"anthropic-version": "2023-06-01"}
    assert http.json["model"] == SONNET_45
    assert http.json["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert "stream" not in http.json


def test_stream_flag_is_sent_only_for_streams():
    assert body_of(user("hi"), stream=True)["stream"] is True


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-3-haiku-20240307", 4096),
        ("claude-3-opus-20240229", 4096),
        (SONNET_35, 8192),
        ("claude-3-7-sonnet-20250219", 8192),
        ("claude-sonnet-4-20250514", 8192),
        (SONNET_45, 8192),
        ("my-proxy-alias", 8192),
    ],
)
def test_max_tokens_defaults_by_model_family_when_the_caller_gives_none(model, expected):
    assert body_of(user("hi"), model)["max_tokens"] == expected


def test_max_tokens_from_the_request_wins_and_the_constructor_default_overrides_the_table():
    assert body_of(Request([Message.user("hi")], max_tokens=77))["max_tokens"] == 77
    custom = AnthropicDialect(default_max_tokens=1234)
    assert body_of(user("hi"), dialect=custom)["max_tokens"] == 1234


def test_constructor_rejects_bad_options_with_typed_errors():
    with pytest.raises(BadRequestError, match="default_max_tokens"):
        AnthropicDialect(default_max_tokens=0)
    with pytest.raises(BadRequestError, match="structured_output"):
        AnthropicDialect(structured_output="json")  # type: ignore[arg-type]


def test_betas_from_constructor_and_extra_headers_are_joined_once():
    dialect = AnthropicDialect(betas=("context-management-2025-06-27",), version="2024-01-01")
    request = Request(
        [Message.user("hi")],
        extra_headers={
            "Anthropic-Beta": "interleaved-thinking-2025-05-14, context-management-2025-06-27",
            "X-Trace": "abc",
        },
    )
    headers = dialect.build_request(request, SONNET_45, stream=False).headers
    assert headers["anthropic-version"] == "2024-01-01"
    assert (
        headers["anthropic-beta"] == "context-management-2025-06-27,interleaved-thinking-2025-05-14"
    )
    assert headers["X-Trace"] == "abc"


def test_extra_headers_replace_the_version_header_case_insensitively():
    request = Request([Message.user("hi")], extra_headers={"Anthropic-Version": "2099-01-01"})
    headers = DIALECT.build_request(request, SONNET_45, stream=False).headers
    assert headers == {"Anthropic-Version": "2099-01-01"}


def test_sampling_options_stop_sequences_are_sent_and_seed_is_not():
    request = Request(
        [Message.user("hi")], temperature=0.2, top_p=0.9, stop=["END", "STOP"], seed=7
    )
    body = body_of(request)
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END", "STOP"]
    assert "seed" not in body


def test_extra_is_deep_merged_into_the_body_last():
    fmt = ResponseFormat(schema={"type": "object", "properties": {}, "additionalProperties": False})
    request = Request(
        [Message.user("hi")],
        response_format=fmt,
        extra={"output_config": {"effort": "low"}, "metadata": {"user_id": "u1"}, "max_tokens": 5},
    )
    body = body_of(request)
    assert body["output_config"] == {
        "format": {"type": "json_schema", "schema": fmt.schema},
        "effort": "low",
    }
    assert body["metadata"] == {"user_id": "u1"}
    assert body["max_tokens"] == 5


# =========================================================================== system / roles


def test_every_system_message_becomes_a_system_block_keeping_cache_control():
    cached = Text(
        "long rules",
        {"anthropic": {"cache_control": {"type": "ephemeral"}}, "gemini": {"ignored": True}},
    )
    request = Request(
        [
            Message("system", [cached]),
            Message.user("hi"),
            Message.system("late instruction"),
        ]
    )
    body = body_of(request)
    assert body["system"] == [
        {"type": "text", "text": "long rules", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "late instruction"},
    ]
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_a_request_with_only_system_messages_is_rejected_before_sending():
    with pytest.raises(BadRequestError, match="at least one user or assistant"):
        body_of(Request([Message.system("rules")]))


def test_a_system_message_with_an_image_is_rejected_with_a_fix():
    with pytest.raises(BadRequestError, match="move it to a user message"):
        body_of(Request([Message("system", [Image(data=PNG)]), Message.user("hi")]))


def test_consecutive_same_role_messages_are_merged_into_one_turn():
    body = body_of(
        Request(
            [
                Message.user("a"),
                Message.user("b"),
                Message.assistant("c"),
                Message.assistant("d"),
            ]
        )
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "c"}, {"type": "text", "text": "d"}],
        },
    ]


def test_parallel_tool_results_and_following_user_text_form_one_user_turn_results_first():
    request = Request(
        [
            Message.user("weather in Paris and Rome?"),
            Message.assistant(
                [
                    ToolCall.from_arguments("toolu_1", "get_weather", {"city": "Paris"}),
                    ToolCall.from_arguments("toolu_2", "get_weather", {"city": "Rome"}),
                ]
            ),
            Message.user("(take your time)"),
            Message.tool("toolu_1", "18C"),
            Message.tool("toolu_2", "21C", is_error=False),
        ]
    )
    turns = body_of(request)["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["type"] for b in turns[2]["content"]] == ["tool_result", "tool_result", "text"]
    assert turns[2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": "18C",
        "is_error": False,
    }
    assert turns[2]["content"][2]["text"] == "(take your time)"


def test_empty_text_parts_are_not_sent():
    body = body_of(Request([Message("user", [Text(""), Text("x")]), Message.assistant("")]))
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "x"}]}]


# =========================================================================== media


def test_image_bytes_are_sent_as_base64_with_the_given_or_sniffed_media_type():
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 8
    body = body_of(
        Request(
            [
                Message.user(
                    [
                        Image(data=PNG),
                        Image(data=jpeg, media_type="image/jpg"),
                        Text("what?"),
                    ]
                )
            ]
        )
    )
    first, second, _ = body["messages"][0]["content"]
    assert first == {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": base64.b64encode(PNG).decode(),
        },
    }
    assert second["source"]["media_type"] == "image/jpeg"


def test_image_urls_are_sent_as_url_sources_and_data_urls_as_base64():
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    body = body_of(
        Request(
            [
                Message.user(
                    [
                        Image(url="https://example.com/cat.jpg"),
                        Image(url=data_url),
                    ]
                )
            ]
        )
    )
    url_block, data_block = body["messages"][0]["content"]
    assert url_block == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }
    assert data_block["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": base64.b64encode(PNG).decode(),
    }


def test_an_image_type_anthropic_does_not_take_is_rejected_with_the_accepted_list():
    with pytest.raises(BadRequestError, match="image/jpeg, image/png, image/gif, image/webp"):
        body_of(Request([Message.user([Image(data=b"BM....", media_type="image/bmp")])]))


def test_documents_pdf_text_url_and_file_id_become_document_blocks():
    pdf = b"%PDF-1.7 fake"
    request = Request(
        [
            Message.user(
                [
                    File(data=pdf, media_type="application/pdf", filename="report.pdf"),
                    File(data=b"plain notes", media_type="text/plain"),
                    File(url="https://example.com/paper.pdf"),
                    File(file_id="file_011abc", media_type="application/pdf"),
                    File(file_id="file_011img", media_type="image/png"),
                ]
            )
        ]
    )
    http = DIALECT.build_request(request, SONNET_45, stream=False)
    blocks = http.json["messages"][0]["content"]
    assert blocks[0] == {
        "type": "document",
        "title": "report.pdf",
        "source": {
            "type": "base64",
            "media_type": "application/pdf",
            "data": base64.b64encode(pdf).decode(),
        },
    }
    assert blocks[1] == {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"},
    }
    assert blocks[2] == {
        "type": "document",
        "source": {"type": "url", "url": "https://example.com/paper.pdf"},
    }
    assert blocks[3] == {"type": "document", "source": {"type": "file", "file_id": "file_011abc"}}
    assert blocks[4] == {"type": "image", "source": {"type": "file", "file_id": "file_011img"}}
    assert http.headers["anthropic-beta"] == "files-api-2025-04-14"


def test_document_provider_data_enables_citations_and_caching():
    doc = File(
        data=b"notes",
        media_type="text/plain",
        provider_data={
            "anthropic": {
                "citations": {"enabled": True},
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            }
        },
    )
    block = body_of(Request([Message.user([doc])]))["messages"][0]["content"][0]
    assert block["citations"] == {"enabled": True}
    assert block["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_unsupported_document_type_and_audio_are_rejected_with_typed_errors():
    with pytest.raises(BadRequestError, match="PDF or plain text"):
        body_of(Request([Message.user([File(data=b"PK..", media_type="application/zip")])]))
    with pytest.raises(BadRequestError, match="does not accept audio"):
        body_of(Request([Message.user([Audio(data=b"RIFF", media_type="audio/wav")])]))


# =========================================================================== tools


def test_tools_carry_schema_strict_only_where_supported_and_provider_data():
    strict = Tool(
        "lookup",
        "",
        {"type": "object", "properties": {}},
        strict=True,
        provider_data={
            "anthropic": {"cache_control": {"type": "ephemeral"}, "defer_loading": True}
        },
    )
    request = Request([Message.user("hi")], tools=[WEATHER, strict])
    new = body_of(request, SONNET_45)["tools"]
    assert new[0] == {
        "name": "get_weather",
        "description": "Weather for a city.",
        "input_schema": WEATHER.parameters,
    }
    assert new[1] == {
        "name": "lookup",
        "input_schema": {"type": "object", "properties": {}},
        "strict": True,
        "cache_control": {"type": "ephemeral"},
        "defer_loading": True,
    }
    old = body_of(request, SONNET_35)["tools"]
    assert "strict" not in old[1]


def test_server_tools_are_passed_through_from_provider_data():
    search = Tool(
        "web_search", provider_data={"anthropic": {"type": "web_search_20250305", "max_uses": 3}}
    )
    tools = body_of(Request([Message.user("news?")], tools=[search]))["tools"]
    assert tools == [{"name": "web_search", "type": "web_search_20250305", "max_uses": 3}]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (NamedTool("get_weather"), None, {"type": "tool", "name": "get_weather"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, None, None),
    ],
)
def test_tool_choice_maps_to_anthropic_and_parallel_false_disables_parallel_use(
    choice, parallel, expected
):
    body = body_of(
        Request(
            [Message.user("hi")], tools=[WEATHER], tool_choice=choice, parallel_tool_calls=parallel
        )
    )
    assert body.get("tool_choice") == expected


def test_tool_choice_is_not_sent_without_tools():
    assert "tool_choice" not in body_of(Request([Message.user("hi")], tool_choice="required"))


def test_tool_results_carry_is_error_and_content_blocks_with_images():
    request = Request(
        [
            Message.user("look"),
            Message.assistant([ToolCall.from_arguments("toolu_9", "screenshot", {})]),
            Message(
                "tool", [ToolResult("toolu_9", [Text("here"), Image(data=PNG)], is_error=True)]
            ),
        ]
    )
    result = body_of(request)["messages"][2]["content"][0]
    assert result["is_error"] is True
    assert result["content"][0] == {"type": "text", "text": "here"}
    assert result["content"][1]["type"] == "image"


def test_tool_call_with_only_raw_arguments_is_sent_parsed_and_invalid_json_is_a_typed_error():
    good = ToolCall("toolu_1", "f", {}, '{"a": 1}')
    blocks = body_of(Request([Message.user("x"), Message.assistant([good])]))["messages"][1][
        "content"
    ]
    assert blocks == [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}]
    bad = ToolCall("toolu_2", "f", {}, '{"a": ')
    with pytest.raises(ToolArgumentsError, match="not JSON"):
        body_of(Request([Message.user("x"), Message.assistant([bad])]))


# =========================================================================== cross-provider


def test_openai_style_history_builds_a_valid_anthropic_request():
    history = to_messages(
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "hmm",
                "tool_calls": [
                    {
                        "id": "call_Ab12",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_Ab12", "content": "cold"},
        ]
    )
    body = body_of(Request(history, tools=[WEATHER]))
    assert body["system"] == [{"type": "text", "text": "be brief"}]
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "call_Ab12",
                "name": "get_weather",
                "input": {"city": "Oslo"},
            }
        ],
    }
    assert body["messages"][2]["content"][0]["tool_use_id"] == "call_Ab12"


def test_foreign_ids_are_sanitised_consistently_and_without_collisions():
    odd = ["call/1.a", "call:1.a", "", "fc-7c2e|gemini"]
    request = Request([Message.user("go")])
    for call_id in odd:
        request.messages.append(Message.assistant([ToolCall.from_arguments(call_id, "f", {})]))
        request.messages.append(Message.tool(call_id, "ok"))
    turns = body_of(request)["messages"]
    use_ids = [t["content"][0]["id"] for t in turns if t["role"] == "assistant"]
    result_ids = [t["content"][0]["tool_use_id"] for t in turns[1:] if t["role"] == "user"]
    assert use_ids == result_ids
    assert len(set(use_ids)) == len(odd)
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]+", i) for i in use_ids)
    assert wire_tool_id("toolu_01ABC-x_y") == "toolu_01ABC-x_y"


def test_foreign_thinking_is_dropped_and_an_emptied_turn_disappears():
    request = Request(
        [
            Message.user("q1"),
            Message.assistant([Thinking("gpt reasoning", provider="openai_chat")]),
            Message.assistant("answer"),
            Message.user("q2"),
        ]
    )
    turns = body_of(request)["messages"]
    assert turns[1] == {"role": "assistant", "content": [{"type": "text", "text": "answer"}]}
    assert "thinking" not in json.dumps(turns)


def test_anthropic_thinking_is_sent_back_with_signature_and_redacted_data_verbatim():
    request = Request(
        [
            Message.user("q"),
            Message.assistant(
                [
                    Thinking("step 1", signature="SIG==", provider="anthropic"),
                    Thinking("", redacted="REDACTED==", provider="anthropic"),
                    Thinking("unsigned", provider="anthropic"),
                    Thinking("gemini thought", signature="GSIG", provider="gemini"),
                    Text("done"),
                ]
            ),
            Message.user("and?"),
        ]
    )
    assert body_of(request)["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "step 1", "signature": "SIG=="},
        {"type": "redacted_thinking", "data": "REDACTED=="},
        {"type": "text", "text": "done"},
    ]


def test_message_level_cache_control_marks_the_last_block_of_that_message():
    request = Request(
        [
            Message(
                "user",
                [Text("a"), Text("b")],
                provider_data={"anthropic": {"cache_control": {"type": "ephemeral"}}},
            ),
            Message.user("c"),
        ]
    )
    content = body_of(request)["messages"][0]["content"]
    assert content[1] == {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}}
    assert "cache_control" not in content[0] and "cache_control" not in content[2]


# =========================================================================== thinking


def test_reasoning_budget_becomes_thinking_and_max_tokens_leaves_room_for_the_answer():
    body = body_of(
        Request([Message.user("hi")], reasoning=Reasoning(budget_tokens=4096), temperature=0.3)
    )
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert body["max_tokens"] == 4096 + 8192
    assert "temperature" not in body  # Anthropic rejects a temperature with thinking


@pytest.mark.parametrize("effort", sorted(EFFORT_BUDGET_TOKENS))
def test_reasoning_effort_maps_to_the_documented_budget(effort):
    body = body_of(build_request("hi", reasoning=effort))
    assert body["thinking"]["budget_tokens"] == EFFORT_BUDGET_TOKENS[effort]


def test_reasoning_effort_none_or_budget_zero_sends_no_thinking():
    assert "thinking" not in body_of(build_request("hi", reasoning="none"))
    assert "thinking" not in body_of(
        Request([Message.user("hi")], reasoning=Reasoning(budget_tokens=0))
    )


def test_bad_reasoning_settings_are_typed_errors_that_say_how_to_fix_them():
    with pytest.raises(BadRequestError, match="minimal, low, medium"):
        body_of(build_request("hi", reasoning="extreme"))
    with pytest.raises(BadRequestError, match="minimum of 1024"):
        body_of(Request([Message.user("hi")], reasoning=Reasoning(budget_tokens=100)))
    with pytest.raises(BadRequestError, match="larger than the thinking budget"):
        body_of(
            Request([Message.user("hi")], reasoning=Reasoning(budget_tokens=2048), max_tokens=2048)
        )


def test_default_max_tokens_with_thinking_is_capped_at_the_model_output_limit():
    body = body_of(
        Request([Message.user("hi")], reasoning=Reasoning(budget_tokens=30000)),
        "claude-opus-4-1-20250805",
    )
    assert body["max_tokens"] == 32000


# =========================================================================== structured output


class City(pydantic.BaseModel):
    name: str
    population: int


def test_native_structured_output_for_new_models_uses_output_config_with_a_strict_schema():
    http = DIALECT.build_request(
        build_request("Paris?", response_format=City), SONNET_45, stream=False
    )
    schema = http.json["output_config"]["format"]["schema"]
    assert http.json["output_config"]["format"]["type"] == "json_schema"
    assert schema["additionalProperties"] is False
    assert schema["properties"] == City.model_json_schema()["properties"]
    assert "tools" not in http.json
    assert "anthropic-beta" not in http.headers


def test_structured_output_for_older_models_forces_a_tool_named_after_the_format():
    body = body_of(build_request("Paris?", response_format=City), SONNET_35)
    assert "output_config" not in body
    assert body["tools"][-1]["name"] == "City"
    assert body["tools"][-1]["input_schema"]["properties"] == City.model_json_schema()["properties"]
    assert body["tool_choice"] == {"type": "tool", "name": "City"}


def test_forced_structured_tool_lets_the_model_call_other_tools_and_respects_thinking():
    with_tools = body_of(build_request("Paris?", response_format=City, tools=[WEATHER]), SONNET_35)
    assert with_tools["tool_choice"] == {"type": "any"}
    thinking = body_of(
        build_request("Paris?", response_format=City, reasoning=Reasoning(budget_tokens=2048)),
        "claude-3-7-sonnet-20250219",
    )
    assert thinking["tool_choice"] == {"type": "auto"}


def test_json_object_without_schema_uses_an_object_tool_even_on_new_models():
    body = body_of(build_request("give json", response_format={"type": "json_object"}), SONNET_45)
    assert body["tools"] == [
        {
            "name": "response",
            "description": body["tools"][0]["description"],
            "input_schema": {"type": "object"},
        }
    ]


def test_structured_output_mode_can_be_forced_by_constructor_option():
    as_tool = AnthropicDialect(structured_output="tool")
    body = body_of(build_request("Paris?", response_format=City), SONNET_45, dialect=as_tool)
    assert body["tool_choice"] == {"type": "tool", "name": "City"}
    assert body["tools"][0]["strict"] is True
    native = AnthropicDialect(structured_output="native")
    assert "output_config" in body_of(
        build_request("Paris?", response_format=City), SONNET_35, dialect=native
    )


def test_structured_tool_name_colliding_with_a_request_tool_is_rejected():
    clash = Tool("City")
    with pytest.raises(BadRequestError, match="give the response format another name"):
        body_of(build_request("x", response_format=City, tools=[clash]), SONNET_35)


def test_forced_structured_tool_call_parses_back_into_json_text_and_a_normal_stop():
    request = build_request("Paris?", response_format=City)
    reply = fakes.tool_call_reply([("City", {"name": "Paris", "population": 2161000})])
    response = DIALECT.parse_response(reply.body, request, SONNET_35)  # type: ignore[arg-type]
    assert response.tool_calls == []
    assert response.finish_reason == "stop"
    assert response.parsed == City(name="Paris", population=2161000)
    streamed = collect(
        fakes.tool_call_stream([("City", {"name": "Paris", "population": 2161000})]),
        request,
        SONNET_35,
    )
    streamed.response_format = request.response_format
    assert streamed.tool_calls == [] and streamed.finish_reason == "stop"
    assert streamed.parsed == City(name="Paris", population=2161000)


def test_structured_tool_call_next_to_a_real_tool_call_keeps_the_real_one():
    request = build_request("Paris?", response_format=City, tools=[WEATHER])
    reply = fakes.tool_call_reply(
        [("get_weather", {"city": "Paris"}), ("City", {"name": "P", "population": 1})]
    )
    response = DIALECT.parse_response(reply.body, request, SONNET_35)  # type: ignore[arg-type]
    assert [c.name for c in response.tool_calls] == ["get_weather"]
    assert response.finish_reason == "tool_calls"


# =========================================================================== parse_response


def test_parse_response_maps_every_block_kind():
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "let me see", "signature": "SIG"},
            {"type": "redacted_thinking", "data": "RED"},
            {
                "type": "server_tool_use",
                "id": "srvtoolu_1",
                "name": "web_search",
                "input": {"query": "q"},
            },
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
            {
                "type": "text",
                "text": "Cited.",
                "citations": [{"type": "web_search_result_location", "url": "u"}],
            },
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1, 2]}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "container": {"id": "container_1"},
        "usage": {"input_tokens": 5, "output_tokens": 9},
    }
    response = DIALECT.parse_response(body, None, "claude-requested")
    assert (
        response.id == "msg_1" and response.model == "claude-x" and response.provider == "anthropic"
    )
    thinking, redacted, server_use, server_result, text, call = response.parts
    assert thinking == Thinking("let me see", signature="SIG", provider="anthropic")
    assert redacted == Thinking("", redacted="RED", provider="anthropic")
    assert server_use == Text("", {"anthropic": {"block": body["content"][2]}})
    assert server_result.provider_data == {"anthropic": {"block": body["content"][3]}}
    assert text.text == "Cited." and text.provider_data["anthropic"]["citations"][0]["url"] == "u"
    assert call == ToolCall("toolu_1", "f", {"a": [1, 2]}, '{"a":[1,2]}')
    assert response.text == "Cited." and response.thinking == "let me see"
    assert response.finish_reason == "tool_calls"
    assert response.provider_data == {
        "anthropic": {"stop_reason": "tool_use", "container": {"id": "container_1"}}
    }


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, "stop"),
    ],
)
def test_stop_reasons_map_to_canonical_finish_reasons(stop_reason, expected):
    content = (
        [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]
        if stop_reason == "tool_use"
        else []
    )
    body = {"id": "m", "content": content, "stop_reason": stop_reason, "usage": {}}
    assert DIALECT.parse_response(body, None, SONNET_45).finish_reason == expected


def test_usage_counts_cache_reads_and_writes_in_input_and_records_1h_writes_and_searches():
    usage = {
        "input_tokens": 6,
        "cache_read_input_tokens": 20443,
        "cache_creation_input_tokens": 574,
        "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 74},
        "output_tokens": 489,
        "output_tokens_details": {"thinking_tokens": 77},
        "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 1},
    }
    parsed = DIALECT.parse_response(
        {"id": "m", "content": [], "usage": usage}, None, SONNET_45
    ).usage
    assert parsed.input_tokens == 6 + 20443 + 574
    assert parsed.cache_read_tokens == 20443 and parsed.cache_write_tokens == 574
    assert parsed.cache_write_1h_tokens == 74
    assert parsed.uncached_input_tokens == 6
    assert parsed.output_tokens == 489 and parsed.reasoning_tokens == 77
    assert parsed.units == {"web_search": 2}
    assert parsed.requests == 1


def test_usage_adds_compaction_iterations_but_not_other_models_iterations():
    usage = {
        "input_tokens": 181,
        "output_tokens": 8,
        "cache_read_input_tokens": 0,
        "iterations": [
            {
                "type": "compaction",
                "input_tokens": 100,
                "output_tokens": 83,
                "cache_read_input_tokens": 55096,
                "cache_creation_input_tokens": 0,
            },
            {
                "type": "advisor_message",
                "model": "claude-opus-4-8",
                "input_tokens": 2543,
                "output_tokens": 18,
            },
            {"type": "message", "input_tokens": 181, "output_tokens": 8},
        ],
    }
    parsed = DIALECT.parse_response(
        {"id": "m", "content": [], "usage": usage}, None, SONNET_45
    ).usage
    assert parsed.input_tokens == 181 + 100 + 55096
    assert parsed.cache_read_tokens == 55096
    assert parsed.output_tokens == 91


def test_parse_response_of_an_error_body_raises_the_typed_error():
    with pytest.raises(ServerError, match="Overloaded"):
        DIALECT.parse_response(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            None,
            SONNET_45,
        )


def test_parse_response_without_content_is_a_server_error():
    with pytest.raises(ServerError, match="without a 'content' list"):
        DIALECT.parse_response({"id": "m", "type": "message"}, None, SONNET_45)


# =========================================================================== streams


def test_text_stream_emits_start_text_usage_and_finish_and_matches_the_plain_reply():
    usage = fakes.wire_usage(
        input_tokens=30, output_tokens=12, cache_read=2048, cache_write=100, cache_write_1h=40
    )
    streamed = collect(fakes.text_stream(["Hel", "lo", " world"], usage=usage))
    plain = DIALECT.parse_response(
        fakes.text_reply("Hello world", usage=usage).body, None, SONNET_45
    )  # type: ignore[arg-type]
    assert streamed.text == plain.text == "Hello world"
    assert streamed.usage == plain.usage
    assert streamed.usage.input_tokens == 30 + 2048 + 100
    assert streamed.usage.cache_write_1h_tokens == 40
    assert streamed.finish_reason == plain.finish_reason == "stop"
    assert streamed.id.startswith("msg_01") and streamed.model == SONNET_45


def test_tool_call_stream_groups_fragments_by_block_index_and_matches_the_plain_reply():
    calls = [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Europe/Paris", "fmt": "24h"})]
    reply = fakes.tool_call_stream(calls, text="Checking.")
    parser = DIALECT.stream_parser(None, SONNET_45)
    deltas = [e for ev in events_of(reply) for e in parser.feed(ev) if isinstance(e, ToolCallDelta)]
    assert deltas[0] == ToolCallDelta(1, id=fakes.tool_id("get_weather", 0), name="get_weather")
    assert {d.index for d in deltas} == {1, 2}  # content block indexes (block 0 is the text)
    assert all(d.id is None and d.name is None for d in deltas if d.arguments)
    streamed = collect(reply)
    plain = DIALECT.parse_response(
        fakes.tool_call_reply(calls, text="Checking.").body, None, SONNET_45
    )  # type: ignore[arg-type]
    assert [(c.id, c.name, c.arguments) for c in streamed.tool_calls] == [
        (c.id, c.name, c.arguments) for c in plain.tool_calls
    ]
    assert streamed.finish_reason == "tool_calls"
    assert streamed.text == "Checking."


def test_thinking_stream_keeps_text_and_signature_in_one_thinking_part():
    reply = fakes.text_stream(["4"], thinking=["2+2 ", "is 4"], signature="SIGNED==")
    streamed = collect(reply)
    assert streamed.parts[0] == Thinking("2+2 is 4", signature="SIGNED==", provider="anthropic")
    assert streamed.text == "4"
    plain = DIALECT.parse_response(
        fakes.text_reply("4", thinking="2+2 is 4", signature="SIGNED==").body, None, SONNET_45
    )  # type: ignore[arg-type]
    assert plain.parts[0] == streamed.parts[0]
    assert streamed.usage == plain.usage
    assert 0 < streamed.usage.reasoning_tokens < streamed.usage.output_tokens


def test_stream_usage_combines_start_and_delta_without_double_counting_output():
    payloads = [
        message_start({"input_tokens": 100, "cache_read_input_tokens": 50, "output_tokens": 3}),
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        *message_end(usage={"output_tokens": 42}),
    ]
    events, parser = feed_all(payloads)
    usages = [e.usage for e in events if isinstance(e, UsageEvent)]
    assert usages[0].input_tokens == 150 and usages[0].output_tokens == 3
    assert usages[-1].input_tokens == 150 and usages[-1].output_tokens == 42
    assert usages[-1].cache_read_tokens == 50
    assert isinstance(events[0], StreamStart) and events[0].id == "msg_1"
    assert parser.close() == []


def test_stream_takes_updated_input_counts_from_message_delta():
    payloads = [
        message_start({"input_tokens": 702, "cache_read_input_tokens": 0, "output_tokens": 1}),
        *message_end(
            "end_turn",
            {
                "input_tokens": 1591,
                "cache_read_input_tokens": 10,
                "output_tokens": 175,
                "server_tool_use": {"web_search_requests": 1},
            },
        ),
    ]
    events, _ = feed_all(payloads)
    final = [e.usage for e in events if isinstance(e, UsageEvent)][-1]
    assert final.input_tokens == 1601 and final.output_tokens == 175
    assert final.units == {"web_search": 1}


def test_stream_assembles_server_tool_blocks_from_partial_json_and_compaction_content():
    payloads = [
        message_start(),
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "compaction", "content": None},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "compaction_delta", "content": "Sum"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "compaction_delta", "content": "mary"},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "server_tool_use",
                "id": "srvtoolu_1",
                "name": "web_search",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"query": '},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '"q"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "text_delta", "text": "Found"},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {
                "type": "citations_delta",
                "citation": {"type": "web_search_result_location", "url": "u"},
            },
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "content_block_start",
            "index": 3,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_7",
                "name": "f",
                "input": {"whole": True},
            },
        },
        {"type": "content_block_stop", "index": 3},
        *message_end("tool_use"),
    ]
    acc = StreamAccumulator()
    events, _ = feed_all(payloads)
    for event in events:
        acc.add(event)
    response = acc.response(provider="anthropic", model=SONNET_45)
    compaction, server, text, call = response.parts
    assert compaction.provider_data == {
        "anthropic": {"block": {"type": "compaction", "content": "Summary"}}
    }
    assert server.provider_data == {
        "anthropic": {
            "block": {
                "type": "server_tool_use",
                "id": "srvtoolu_1",
                "name": "web_search",
                "input": {"query": "q"},
            }
        }
    }
    assert text.text == "Found"
    assert text.provider_data == {
        "anthropic": {"citations": [{"type": "web_search_result_location", "url": "u"}]}
    }
    assert (call.id, call.name, call.arguments) == ("toolu_7", "f", {"whole": True})
    assert response.finish_reason == "tool_calls"


def test_redacted_thinking_in_a_stream_becomes_a_redacted_thinking_part():
    payloads = [
        message_start(),
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "redacted_thinking", "data": "RED=="},
        },
        {"type": "content_block_stop", "index": 0},
        *message_end(),
    ]
    events, _ = feed_all(payloads)
    assert ThinkingDelta("", 0, redacted="RED==", provider="anthropic") in events


def test_ping_and_unknown_events_are_ignored():
    parser = DIALECT.stream_parser(None, SONNET_45)
    assert parser.feed(SSEEvent('{"type": "ping"}', "ping")) == []
    assert parser.feed(SSEEvent('{"type": "brand_new_event"}', "brand_new_event")) == []
    assert parser.feed(SSEEvent("", None)) == []


def test_in_stream_overloaded_error_raises_a_retryable_server_error():
    reply = fakes.error_stream("Overloaded", error_type="overloaded_error")
    parser = DIALECT.stream_parser(None, SONNET_45)
    with pytest.raises(ServerError, match="Overloaded") as info:
        for event in events_of(reply):
            parser.feed(event)
    assert (
        info.value.retryable and info.value.code == "overloaded_error" and info.value.status == 529
    )


def test_in_stream_rate_limit_and_unknown_errors_get_their_classes():
    parser = DIALECT.stream_parser(None, SONNET_45)
    with pytest.raises(RateLimitError):
        parser.feed(
            SSEEvent(
                '{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}', "error"
            )
        )
    with pytest.raises(ServerError):
        parser.feed(
            SSEEvent('{"type":"error","error":{"type":"mystery_error","message":"?"}}', "error")
        )


def test_malformed_stream_data_raises_stream_error():
    parser = DIALECT.stream_parser(None, SONNET_45)
    with pytest.raises(StreamError, match="not JSON"):
        parser.feed(SSEEvent("{not json", "content_block_delta"))
    with pytest.raises(StreamError, match="not an object"):
        parser.feed(SSEEvent("[1, 2]", None))
    with pytest.raises(StreamError, match="before its start"):
        parser.feed(
            SSEEvent(
                '{"type":"content_block_delta","index":5,"delta":{"type":"text_delta","text":"x"}}'
            )
        )
    with pytest.raises(StreamError, match="integer index"):
        parser.feed(SSEEvent('{"type":"content_block_start","content_block":{"type":"text"}}'))


def test_server_tool_input_that_is_not_json_raises_stream_error():
    payloads = [
        message_start(),
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {
                "type": "server_tool_use",
                "id": "s",
                "name": "web_search",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"q'},
        },
    ]
    _, parser = feed_all(payloads)
    with pytest.raises(StreamError, match="not JSON"):
        parser.feed(SSEEvent('{"type": "content_block_stop", "index": 0}'))


def test_a_stream_cut_before_message_stop_is_an_error_on_close():
    reply = fakes.text_stream(["partial"])
    parser = DIALECT.stream_parser(None, SONNET_45)
    for event in events_of(reply)[:-1]:  # everything but message_stop
        parser.feed(event)
    with pytest.raises(StreamError, match="before message_stop"):
        parser.close()


def test_streamed_reply_over_loopback_http_collects_to_the_expected_response(fake: FakeProvider):
    fake.add(
        fakes.text_stream(["Bon", "jour"], usage=fakes.wire_usage(input_tokens=9, output_tokens=4))
    )
    http = DIALECT.build_request(user("salut"), SONNET_45, stream=True)
    decoder, parser, acc = SSEDecoder(), DIALECT.stream_parser(None, SONNET_45), StreamAccumulator()
    with httpx.stream("POST", fake.url + http.path, json=http.json, headers=http.headers) as resp:
        for chunk in resp.iter_bytes():
            for event in decoder.feed(chunk):
                for item in parser.feed(event):
                    acc.add(item)
    for event in decoder.flush():
        for item in parser.feed(event):
            acc.add(item)
    parser.close()
    response = acc.response(provider="anthropic", model=SONNET_45)
    assert response.text == "Bonjour"
    assert response.usage.input_tokens == 9 + 1536 and response.usage.output_tokens == 4
    received = fake.requests[0]
    assert received.path == "/messages"
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert received.json["stream"] is True


# =========================================================================== errors


@pytest.mark.parametrize(
    ("status", "kind", "message", "cls"),
    [
        (
            400,
            "invalid_request_error",
            "messages: text content blocks must be non-empty",
            BadRequestError,
        ),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            ContextWindowExceededError,
        ),
        (
            400,
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000",
            ContextWindowExceededError,
        ),
        (
            400,
            "invalid_request_error",
            "Output blocked by content filtering policy",
            ContentFilterError,
        ),
        (401, "authentication_error", "invalid x-api-key", AuthenticationError),
        (402, "billing_error", "credit balance too low", PermissionDeniedError),
        (403, "permission_error", "no access to model", PermissionDeniedError),
        (404, "not_found_error", "model: claude-sonet-4-5", NotFoundError),
        (
            413,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes",
            BadRequestError,
        ),
        (
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            RateLimitError,
        ),
        (500, "api_error", "Internal server error", ServerError),
        (504, "timeout_error", "Request timeout", TimeoutError),
        (529, "overloaded_error", "Overloaded", ServerError),
    ],
)
def test_error_bodies_map_to_typed_errors(status, kind, message, cls):
    body = json.dumps(
        {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}
    )
    error = DIALECT.parse_error(status, body.encode(), {})
    assert type(error) is cls
    assert error.status == status and error.code == kind
    assert message in error.message and error.body is not None


def test_request_too_large_is_not_treated_as_a_context_window_error():
    body = (
        '{"type":"error","error":{"type":"request_too_large","message":"prompt too long in bytes"}}'
    )
    assert type(DIALECT.parse_error(413, body, {})) is BadRequestError


def test_rate_limit_reads_retry_after_seconds_date_and_milliseconds():
    body = '{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
    assert DIALECT.parse_error(429, body, {"Retry-After": "7"}).retry_after == 7.0  # type: ignore[attr-defined]
    assert DIALECT.parse_error(429, body, {"retry-after-ms": "1500"}).retry_after == 1.5  # type: ignore[attr-defined]
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now) == 30.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert DIALECT.parse_error(429, body, {}).retry_after is None  # type: ignore[attr-defined]


def test_fake_error_reply_parses_to_rate_limit_with_retry_after():
    reply = fakes.error_reply(429, "slow down", retry_after=2)
    error = DIALECT.parse_error(reply.status, json.dumps(reply.body), reply.headers)
    assert isinstance(error, RateLimitError) and error.retry_after == 2.0


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (502, ServerError),
        (401, AuthenticationError),
        (404, NotFoundError),
        (418, ProviderError),
        (408, TimeoutError),
        (400, BadRequestError),
    ],
)
def test_non_json_error_bodies_still_get_the_right_class(status, cls):
    error = DIALECT.parse_error(status, b"<html><body>Bad Gateway</body></html>", {})
    assert type(error) is cls
    assert "non-JSON" in error.message and error.status == status


def test_error_bodies_are_scrubbed_of_keys():
    body = json.dumps(
        {
            "type": "error",
            "error": {
                "type": "authentication_error",
                "message": "bad key sk-ant-api03-abcdefghijkl",
            },
        }
    )
    error = DIALECT.parse_error(401, body, {})
    assert "abcdefghijkl" not in str(error) and "abcdefghijkl" not in (error.body or "")


# =========================================================================== round trips


def test_built_assistant_blocks_parse_back_into_the_same_parts():
    """canonical -> wire -> canonical for every part kind an assistant turn can hold."""
    original = [
        Thinking("plan", signature="SIG", provider="anthropic"),
        Thinking("", redacted="RED", provider="anthropic"),
        Text(
            "",
            {
                "anthropic": {
                    "block": {
                        "type": "server_tool_use",
                        "id": "srvtoolu_1",
                        "name": "web_search",
                        "input": {"query": "q"},
                    }
                }
            },
        ),
        Text(
            "answer", {"anthropic": {"citations": [{"type": "char_location", "cited_text": "a"}]}}
        ),
        ToolCall.from_arguments("toolu_1", "f", {"x": 1}),
    ]
    blocks = body_of(Request([Message.user("q"), Message.assistant(original)]))["messages"][1][
        "content"
    ]
    parsed = DIALECT.parse_response(
        {"id": "m", "content": blocks, "stop_reason": "tool_use", "usage": {}}, None, SONNET_45
    )
    assert parsed.parts == original


def test_user_parts_of_every_kind_reach_the_wire():
    pdf = b"%PDF-1.4"
    request = Request(
        [
            Message.user(
                [
                    Text("see"),
                    Image(data=PNG),
                    Image(url="https://x/y.png"),
                    File(data=pdf, media_type="application/pdf"),
                    File(data=b"t", media_type="text/markdown"),
                    File(url="https://x/doc.pdf"),
                    File(file_id="file_1"),
                ]
            )
        ]
    )
    kinds = [
        (b["type"], b["source"]["type"] if "source" in b else None)
        for b in body_of(request)["messages"][0]["content"]
    ]
    assert kinds == [
        ("text", None),
        ("image", "base64"),
        ("image", "url"),
        ("document", "base64"),
        ("document", "text"),
        ("document", "url"),
        ("document", "file"),
    ]


def test_parsed_response_builds_the_next_turn_with_signature_and_redacted_data_verbatim():
    first = DIALECT.parse_response(
        {
            "id": "m1",
            "model": SONNET_45,
            "stop_reason": "tool_use",
            "usage": {},
            "content": [
                {"type": "thinking", "thinking": "need weather", "signature": "EqQBCkYIBxgC+/=="},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
                {
                    "type": "tool_use",
                    "id": "toolu_01A",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
            ],
        },
        None,
        SONNET_45,
    )
    request = Request(
        [Message.user("weather?"), first.to_message(), Message.tool("toolu_01A", "cold")],
        tools=[WEATHER],
        reasoning=Reasoning(budget_tokens=2048),
    )
    assistant = body_of(request)["messages"][1]["content"]
    assert assistant == [
        {"type": "thinking", "thinking": "need weather", "signature": "EqQBCkYIBxgC+/=="},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Oslo"}},
    ]


def test_a_streamed_thinking_turn_continues_with_its_signature_verbatim():
    streamed = collect(fakes.text_stream(["ok"], thinking=["think"], signature="STREAMSIG=="))
    body = body_of(Request([Message.user("q"), streamed.to_message(), Message.user("more")]))
    assert body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "think",
        "signature": "STREAMSIG==",
    }


# =========================================================================== model table


@pytest.mark.parametrize(
    ("model", "version", "native"),
    [
        ("claude-3-5-sonnet-20241022", (None, 3, 5), False),
        ("claude-3-opus-20240229", (None, 3, 0), False),
        ("claude-sonnet-4-20250514", ("sonnet", 4, 0), False),
        ("claude-opus-4-1-20250805", ("opus", 4, 1), False),
        ("claude-sonnet-4-5-20250929", ("sonnet", 4, 5), True),
        ("anthropic.claude-haiku-4-5-20251001-v1:0", ("haiku", 4, 5), True),
        ("claude-opus-4-6@20260101", ("opus", 4, 6), True),
        ("claude-sonnet-5", ("sonnet", 5, 0), True),
        ("gpt-4o", None, False),
    ],
)
def test_model_names_are_parsed_for_the_capability_table(model, version, native):
    assert model_version(model) == version
    assert model_traits(model).native_structured_output is native


def test_fake_replies_carry_realistic_cache_usage_by_default():
    plain = DIALECT.parse_response(fakes.text_reply("Hello there!").body, None, SONNET_45)  # type: ignore[arg-type]
    assert plain.usage.input_tokens == 212 + 1536
    assert plain.usage.cache_read_tokens == 1536
    assert plain.usage.output_tokens == 3


# =========================================================================== adaptive thinking

OPUS_47 = "claude-opus-4-7"


def test_adaptive_models_get_adaptive_thinking_with_an_effort_instead_of_a_budget():
    body = body_of(build_request("hi", reasoning="high", temperature=0.5, top_p=0.99), OPUS_47)
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert body["output_config"] == {"effort": "high"}
    assert body["max_tokens"] == 8192 + EFFORT_BUDGET_TOKENS["high"]
    assert "temperature" not in body and "top_p" not in body


def test_a_budget_on_an_adaptive_model_maps_to_the_nearest_effort_and_can_hide_thoughts():
    reasoning = Reasoning(budget_tokens=4096, include_thoughts=False)
    body = body_of(Request([Message.user("hi")], reasoning=reasoning, max_tokens=3000), OPUS_47)
    assert body["thinking"] == {"type": "adaptive", "display": "omitted"}
    assert body["output_config"] == {"effort": "medium"}
    assert body["max_tokens"] == 3000  # no hard budget to exceed on adaptive models
    minimal = body_of(build_request("hi", reasoning="minimal"), "claude-sonnet-5")
    assert minimal["output_config"] == {"effort": "low"}


def test_adaptive_models_never_get_sampling_params_even_without_thinking():
    body = body_of(Request([Message.user("hi")], temperature=0.2, top_p=0.5), OPUS_47)
    assert "temperature" not in body and "top_p" not in body


def test_effort_and_native_structured_output_share_output_config():
    body = body_of(build_request("Paris?", response_format=City, reasoning="low"), OPUS_47)
    assert body["output_config"]["effort"] == "low"
    assert body["output_config"]["format"]["type"] == "json_schema"
    assert "tool_choice" not in body


def test_model_table_marks_opus_4_7_and_later_as_adaptive_only():
    assert model_traits(OPUS_47).adaptive_thinking
    assert model_traits("claude-sonnet-5").adaptive_thinking
    assert not model_traits("claude-opus-4-6").adaptive_thinking
    assert model_traits("claude-opus-4-6").sampling_params


def test_a_stream_request_answered_with_a_plain_json_error_is_parsed_as_that_error(
    fake: FakeProvider,
):
    fake.add(fakes.error_reply(529, "Overloaded"))
    http = DIALECT.build_request(user("hi"), SONNET_45, stream=True)
    resp = httpx.post(fake.url + http.path, json=http.json, headers=http.headers)
    assert resp.headers["content-type"] == "application/json"
    error = DIALECT.parse_error(resp.status_code, resp.content, resp.headers)
    assert isinstance(error, ServerError) and error.retryable
    assert error.status == 529 and error.code == "overloaded_error"
