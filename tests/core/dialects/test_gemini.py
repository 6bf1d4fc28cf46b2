"""The Gemini dialect: request building, response / stream parsing, errors, round trips."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, Field

from tests.fakes import replies_gemini
from tests.fakes.server import FakeProvider, sse
from tollway.core import errors
from tollway.core.dialects.base import SSEEvent
from tollway.core.dialects.gemini import DIALECT, VERTEX_DIALECT, GeminiDialect
from tollway.core.inputs import build_request
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
    StreamAccumulator,
    StreamStart,
    Text,
    TextDelta,
    Thinking,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolResult,
    Usage,
    UsageEvent,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
SIG = "EsgBCsUBAb4+9vt0aQ=="
G = "gemini"


def body_of(request: Request, model: str = "gemini-2.5-flash", *, dialect: GeminiDialect = DIALECT,
            stream: bool = False) -> dict[str, Any]:
    return dialect.build_request(request, model, stream=stream).json


def parts_of(body: dict[str, Any], index: int) -> list[dict[str, Any]]:
    return body["contents"][index]["parts"]


def candidate_body(parts: list[dict[str, Any]], *, finish: str | None = "STOP",
                   usage: dict[str, Any] | None = None, rid: str = "resp-1",
                   **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    candidate.update(extra)
    return {
        "candidates": [candidate],
        "usageMetadata": usage or {"promptTokenCount": 10, "candidatesTokenCount": 3,
                                   "totalTokenCount": 13},
        "modelVersion": "gemini-2.5-flash-002",
        "responseId": rid,
    }


def stream_events(chunks: list[dict[str, Any] | str], *, crlf: bool = True) -> list[Any]:
    """Chunks -> SSE bytes -> SSEDecoder -> the dialect's stream parser, closed."""
    parser = DIALECT.stream_parser(None, "gemini-2.5-flash")
    decoder = SSEDecoder()
    events: list[Any] = []
    for raw in sse(*chunks, crlf=crlf):
        for event in decoder.feed(raw):
            events.extend(parser.feed(event))
    for event in decoder.flush():
        events.extend(parser.feed(event))
    events.extend(parser.close())
    return events


def collect(events: list[Any]) -> Response:
    acc = StreamAccumulator()
    for event in events:
        acc.add(event)
    return acc.response(provider=G, model="gemini-2.5-flash")


# ----------------------------------------------------------------------------- paths


def test_paths_are_generate_content_and_sse_stream_relative_to_the_versioned_base() -> None:
    request = build_request("hi", extra_headers={"x-goog-user-project": "p"})
    plain = DIALECT.build_request(request, "models/gemini-2.5-flash", stream=False)
    streamed = DIALECT.build_request(request, "gemini-2.5-flash", stream=True)
    assert plain.path == "/models/gemini-2.5-flash:generateContent"
    assert streamed.path == "/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert plain.method == "POST"
    assert plain.headers == {"x-goog-user-project": "p"}
    assert "key" not in plain.path and "authorization" not in plain.headers


# ----------------------------------------------------------------------------- messages


def test_system_messages_anywhere_become_system_instruction_in_order() -> None:
    request = build_request([
        Message.system("Be brief."),
        Message.user("hi"),
        Message.system("Answer in French."),
    ])
    body = body_of(request)
    assert body["systemInstruction"] == {
        "parts": [{"text": "Be brief."}, {"text": "Answer in French."}]
    }
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]


def test_a_system_message_with_an_image_is_rejected_with_a_fix() -> None:
    request = build_request([Message("system", [Image(data=PNG)]), Message.user("x")])
    with pytest.raises(errors.BadRequestError, match="move it into a user message"):
        body_of(request)


def test_roles_map_to_user_and_model_and_consecutive_turns_merge() -> None:
    request = build_request([
        Message.user("a"),
        Message.user("b"),
        Message.assistant("c"),
        Message.assistant([ToolCall.from_arguments("call_1", "f", {"x": 1})]),
        Message.tool("call_1", "ok"),
        Message.user("thanks"),
    ])
    body = body_of(request)
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert parts_of(body, 0) == [{"text": "a"}, {"text": "b"}]
    assert parts_of(body, 1)[0] == {"text": "c"}
    assert parts_of(body, 1)[1]["functionCall"]["name"] == "f"
    assert parts_of(body, 2)[0]["functionResponse"]["name"] == "f"
    assert parts_of(body, 2)[1] == {"text": "thanks"}


def test_empty_model_text_and_turns_left_empty_are_not_sent() -> None:
    request = build_request([
        Message.user("q"),
        Message.assistant([Text(""), Thinking("secret", signature="sig", provider="anthropic")]),
        Message.user("again"),
    ])
    body = body_of(request)
    assert body["contents"] == [{"role": "user", "parts": [{"text": "q"}, {"text": "again"}]}]


def test_image_bytes_become_inline_data_with_base64_and_sniffed_mime_type() -> None:
    body = body_of(build_request([Message.user([Text("what?"), Image(data=PNG)])]))
    inline = parts_of(body, 0)[1]["inlineData"]
    assert inline == {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}


def test_media_urls_become_file_data_with_a_mime_type() -> None:
    body = body_of(build_request([Message.user([
        Image(url="https://example.com/cat.jpg?size=2"),
        File(url="gs://bucket/report.pdf"),
        File(file_id="https://generativelanguage.googleapis.com/v1beta/files/abc",
             media_type="text/plain"),
        Audio(url="https://example.com/clip.mp3", media_type="audio/mpeg"),
    ])]))
    assert [p["fileData"] for p in parts_of(body, 0)] == [
        {"fileUri": "https://example.com/cat.jpg?size=2", "mimeType": "image/jpeg"},
        {"fileUri": "gs://bucket/report.pdf", "mimeType": "application/pdf"},
        {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc",
         "mimeType": "text/plain"},
        {"fileUri": "https://example.com/clip.mp3", "mimeType": "audio/mpeg"},
    ]


def test_audio_and_file_bytes_and_data_urls_become_inline_data() -> None:
    wav = b"RIFF\x00\x00\x00\x00WAVEfmt "
    data_url = "data:image/webp;base64," + base64.b64encode(b"webp").decode()
    body = body_of(build_request([Message.user([
        Audio(data=wav),
        File(data=b"%PDF-1.4 ...", filename="a.pdf"),
        Image(url=data_url),
    ])]))
    mimes = [p["inlineData"]["mimeType"] for p in parts_of(body, 0)]
    assert mimes == ["audio/wav", "application/pdf", "image/webp"]
    assert parts_of(body, 0)[2]["inlineData"]["data"] == base64.b64encode(b"webp").decode()


def test_media_without_a_detectable_type_or_source_is_a_typed_error() -> None:
    with pytest.raises(errors.BadRequestError, match="needs media_type"):
        body_of(build_request([Message.user([File(data=b"\x01\x02")])]))
    with pytest.raises(errors.BadRequestError, match="needs url, data or file_id"):
        body_of(build_request([Message.user([Image()])]))


def test_tool_calls_become_function_calls_with_args_dict_and_id() -> None:
    call = ToolCall.from_raw("call_abc", "get_weather", '{"city": "Paris", "days": 2}')
    body = body_of(build_request([Message.user("w?"), Message.assistant([call])]))
    assert parts_of(body, 1) == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "days": 2},
                          "id": "call_abc"}}
    ]


def test_tool_call_with_invalid_argument_json_is_a_typed_error_not_empty_args() -> None:
    call = ToolCall.from_raw("c1", "f", "{not json")
    with pytest.raises(errors.ToolArgumentsError, match="not JSON"):
        body_of(build_request([Message.user("q"), Message.assistant([call])]))


def test_tool_result_names_the_function_found_from_the_matching_call_id() -> None:
    request = build_request([
        Message.user("q"),
        Message.assistant([ToolCall.from_arguments("call_1", "lookup", {}),
                           ToolCall.from_arguments("call_2", "convert", {})]),
        Message.tool("call_2", '{"value": 3.5, "unit": "EUR"}'),
        Message.tool("call_1", "plain words"),
    ])
    body = body_of(request)
    responses = [p["functionResponse"] for p in parts_of(body, 2)]
    assert responses == [
        {"name": "convert", "response": {"value": 3.5, "unit": "EUR"}, "id": "call_2"},
        {"name": "lookup", "response": {"result": "plain words"}, "id": "call_1"},
    ]


def test_tool_result_error_and_explicit_name_and_non_object_json() -> None:
    request = build_request([
        Message.user("q"),
        Message("tool", [ToolResult("x1", "boom", is_error=True, name="explode"),
                         ToolResult("x2", "[1, 2]", name="listy")]),
    ])
    responses = [p["functionResponse"] for p in parts_of(body_of(request), 0)[1:]]
    assert responses[0] == {"name": "explode", "response": {"error": "boom"}, "id": "x1"}
    assert responses[1]["response"] == {"result": "[1, 2]"}


def test_tool_result_without_name_or_matching_call_is_a_typed_error() -> None:
    request = build_request([Message.user("q"), Message.tool("call_orphan", "r")])
    with pytest.raises(errors.BadRequestError, match=r"call_orphan.*name="):
        body_of(request)


def test_tool_call_in_a_user_message_and_result_in_assistant_are_rejected() -> None:
    with pytest.raises(errors.BadRequestError, match="belong in assistant"):
        body_of(build_request([Message.user([ToolCall.from_arguments("c", "f", {})])]))
    with pytest.raises(errors.BadRequestError, match="belong in tool"):
        body_of(build_request([Message.assistant([ToolResult("c", "r", name="f")])]))


def history_with_image_result() -> Request:
    return build_request([
        Message.user("show me"),
        Message.assistant([ToolCall.from_arguments("c1", "get_image", {})]),
        Message.tool("c1", [Text("here"), Image(data=PNG)]),
    ])


def test_tool_result_images_follow_the_function_response_on_gemini_2() -> None:
    parts = parts_of(body_of(history_with_image_result(), "gemini-2.5-flash"), 2)
    assert parts[0]["functionResponse"] == {"name": "get_image", "response": {"result": "here"},
                                            "id": "c1"}
    assert parts[1]["inlineData"]["mimeType"] == "image/png"


def test_tool_result_images_nest_in_the_function_response_on_gemini_3() -> None:
    parts = parts_of(body_of(history_with_image_result(), "gemini-3-flash-preview"), 2)
    assert len(parts) == 1
    response = parts[0]["functionResponse"]
    assert response["parts"][0]["inlineData"]["mimeType"] == "image/png"
    forced = GeminiDialect(multimodal_function_responses=False)
    forced_body = body_of(history_with_image_result(), "gemini-3-pro", dialect=forced)
    assert len(parts_of(forced_body, 2)) == 2


def test_media_only_tool_result_sends_an_empty_response_object() -> None:
    request = build_request([
        Message.user("q"),
        Message.assistant([ToolCall.from_arguments("c1", "get_file", {})]),
        Message.tool("c1", [File(url="https://example.com/a.pdf")]),
    ])
    response = parts_of(body_of(request, "gemini-3-flash-preview"), 2)[0]["functionResponse"]
    assert response["response"] == {}
    assert response["parts"] == [
        {"fileData": {"fileUri": "https://example.com/a.pdf", "mimeType": "application/pdf"}}
    ]


def test_vertex_dialect_sends_no_call_ids() -> None:
    request = build_request([
        Message.user("q"),
        Message.assistant([ToolCall.from_arguments("call_1", "f", {"a": 1})]),
        Message.tool("call_1", "r"),
    ])
    body = body_of(request, dialect=VERTEX_DIALECT)
    assert "id" not in parts_of(body, 1)[0]["functionCall"]
    assert "id" not in parts_of(body, 2)[0]["functionResponse"]
    assert parts_of(body, 2)[0]["functionResponse"]["name"] == "f"


# ----------------------------------------------------------------------------- signatures


def test_thought_signature_goes_back_on_the_same_part_kind() -> None:
    gem = {G: {"thoughtSignature": SIG}}
    request = build_request([
        Message.user("q"),
        Message.assistant([
            Thinking("pondering", provider=G, provider_data={G: {"thoughtSignature": "T1"}}),
            Text("answer", provider_data=gem),
            ToolCall.from_arguments("c1", "f", {}, provider_data={G: {"thoughtSignature": "C1"}}),
            ToolCall.from_arguments("c2", "f", {}),
        ]),
    ])
    parts = parts_of(body_of(request, "gemini-3-flash-preview"), 1)
    assert parts[0] == {"text": "pondering", "thought": True, "thoughtSignature": "T1"}
    assert parts[1] == {"text": "answer", "thoughtSignature": SIG}
    assert parts[2]["thoughtSignature"] == "C1"
    assert "thoughtSignature" not in parts[3]  # Gemini 3 signs only the first parallel call


def test_foreign_signatures_and_thinking_are_never_sent() -> None:
    request = build_request([
        Message.user("q"),
        Message.assistant([
            Thinking("claude thoughts", signature="anthropic-sig", provider="anthropic"),
            Thinking("untagged reasoning"),
            Text("hi", provider_data={"anthropic": {"citations": []}}),
            ToolCall.from_arguments("toolu_01", "f", {}, provider_data={"openai_chat": {"x": 1}}),
        ]),
    ])
    body = body_of(request, "gemini-2.5-flash")
    assert parts_of(body, 1) == [
        {"text": "hi"},
        {"functionCall": {"name": "f", "args": {}, "id": "toolu_01"}},
    ]
    assert "anthropic-sig" not in json.dumps(body)


def test_gemini_3_turn_with_unsigned_calls_gets_the_validator_sentinel_on_the_first() -> None:
    request = build_request([
        Message.user("q"),
        Message.assistant([ToolCall.from_arguments("call_a", "f", {}),
                           ToolCall.from_arguments("call_b", "g", {})]),
        Message.tool("call_a", "1"),
        Message.tool("call_b", "2"),
    ])
    parts = parts_of(body_of(request, "gemini-3-pro-preview"), 1)
    assert parts[0]["thoughtSignature"] == "skip_thought_signature_validator"
    assert "thoughtSignature" not in parts[1]
    older = parts_of(body_of(request, "gemini-2.5-pro"), 1)
    assert all("thoughtSignature" not in p for p in older)
    off = GeminiDialect(signature_fallback=None)
    assert all("thoughtSignature" not in p
               for p in parts_of(body_of(request, "gemini-3-pro-preview", dialect=off), 1))


def test_opaque_gemini_parts_are_replayed_verbatim() -> None:
    raw = {"toolCall": {"id": "x", "toolType": "GOOGLE_SEARCH_WEB", "args": {"q": ["a"]}},
           "thoughtSignature": SIG}
    request = build_request([
        Message.user("q"),
        Message.assistant([Thinking("", provider=G, provider_data={G: {"part": raw}}),
                           Text("done")]),
    ])
    assert parts_of(body_of(request), 1) == [raw, {"text": "done"}]


# ----------------------------------------------------------------------------- tools


class Address(BaseModel):
    city: str
    zip: str | None = None


class Person(BaseModel):
    """A person."""

    name: str = Field(description="full name")
    age: int | None = None
    home: Address
    tags: list[str] = []
    email: str = Field(json_schema_extra={"format": "email"})


def test_tools_become_function_declarations_with_a_gemini_schema() -> None:
    request = build_request("q", tools=[Tool.from_model(Person, name="save_person")])
    declaration = body_of(request)["tools"][0]["functionDeclarations"][0]
    assert declaration["name"] == "save_person"
    assert declaration["description"] == "A person."
    params = declaration["parameters"]
    dumped = json.dumps(params)
    for banned in ("$ref", "$defs", "additionalProperties", "title", "default", "anyOf"):
        assert banned not in dumped
    assert params["type"] == "OBJECT"
    assert params["required"] == ["name", "home", "email"]
    assert params["properties"]["name"] == {"description": "full name", "type": "STRING"}
    assert params["properties"]["age"] == {"nullable": True, "type": "INTEGER"}
    home = params["properties"]["home"]
    assert home["properties"]["zip"] == {"nullable": True, "type": "STRING"}
    assert home["required"] == ["city"]
    assert params["properties"]["tags"] == {"type": "ARRAY", "items": {"type": "STRING"}}
    assert params["properties"]["email"] == {"description": "(format: email)", "type": "STRING"}


def test_tool_without_parameters_omits_the_parameters_schema() -> None:
    tool = Tool("ping", "", {"type": "object", "properties": {}, "additionalProperties": False})
    declaration = body_of(build_request("q", tools=[tool]))["tools"][0]["functionDeclarations"][0]
    assert declaration == {"name": "ping", "description": ""}


def test_schema_odd_shapes_are_made_valid_for_gemini() -> None:
    tool = Tool("odd", "d", {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "level": {"enum": [1, 2, 3]},
            "mode": {"const": "fast"},
            "when": {"type": "string", "format": "date-time"},
            "ratio": {"type": "number", "format": "float", "exclusiveMinimum": 0},
            "opts": {"type": "object", "additionalProperties": {"type": "string"}},
            "bag": {"type": "array"},
            "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "combo": {"allOf": [{"properties": {"a": {"type": "string"}}, "required": ["a"]},
                                {"properties": {"b": {"type": "boolean"}}}]},
            "maybe": {"enum": ["x", None]},
        },
        "required": ["level", "ghost"],
    })
    props = body_of(build_request("q", tools=[tool]))["tools"][0]["functionDeclarations"][0][
        "parameters"]["properties"]
    assert props["level"] == {"type": "STRING", "enum": ["1", "2", "3"]}
    assert props["mode"] == {"type": "STRING", "enum": ["fast"]}
    assert props["when"] == {"type": "STRING", "format": "date-time"}
    assert props["ratio"] == {"type": "NUMBER", "format": "float"}
    assert props["opts"] == {"type": "OBJECT"}
    assert props["bag"] == {"type": "ARRAY", "items": {"type": "STRING"}}
    assert props["either"] == {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}
    assert props["combo"]["properties"] == {"a": {"type": "STRING"}, "b": {"type": "BOOLEAN"}}
    assert props["combo"]["required"] == ["a"]
    assert props["maybe"] == {"nullable": True, "type": "STRING", "enum": ["x"]}


@pytest.mark.parametrize(("choice", "config"), [
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ("lookup", {"mode": "ANY", "allowedFunctionNames": ["lookup"]}),
])
def test_tool_choice_maps_to_function_calling_config(choice: str, config: dict) -> None:
    request = build_request("q", tools=[Tool("lookup"), Tool("other")], tool_choice=choice)
    assert body_of(request)["toolConfig"] == {"functionCallingConfig": config}


def test_named_tool_choice_must_name_a_request_tool() -> None:
    request = build_request("q", tools=[Tool("lookup")], tool_choice=NamedTool("missing"))
    with pytest.raises(errors.BadRequestError, match="missing"):
        body_of(request)


# ----------------------------------------------------------------------------- generation


def test_generation_config_carries_sampling_limits_stop_and_seed() -> None:
    request = build_request("q", temperature=0.2, top_p=0.9, max_tokens=256, stop=["END"], seed=7)
    assert body_of(request)["generationConfig"] == {
        "temperature": 0.2, "topP": 0.9, "maxOutputTokens": 256, "stopSequences": ["END"],
        "seed": 7,
    }


def test_structured_output_sends_json_mime_type_and_converted_ordered_schema() -> None:
    config = body_of(build_request("q", response_format=Person))["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config["responseSchema"]
    assert schema["propertyOrdering"] == ["name", "age", "home", "tags", "email"]
    assert schema["properties"]["home"]["propertyOrdering"] == ["city", "zip"]
    assert "$defs" not in json.dumps(schema)


def test_json_object_format_and_response_json_schema_option() -> None:
    request = build_request("q", response_format={"type": "json_object"})
    config = body_of(request)["generationConfig"]
    assert config == {"responseMimeType": "application/json"}
    dialect = GeminiDialect(response_schema_field="responseJsonSchema")
    request = build_request("q", response_format=Person)
    config = body_of(request, dialect=dialect)["generationConfig"]
    assert "responseSchema" not in config
    home = config["responseJsonSchema"]["properties"]["home"]
    assert home["properties"]["city"]["type"] == "string"
    with pytest.raises(errors.BadRequestError):
        GeminiDialect(response_schema_field="schema")


def test_reasoning_budget_maps_to_thinking_budget_with_thoughts_included() -> None:
    config = body_of(build_request("q", reasoning={"budget_tokens": 2048}))["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 2048, "includeThoughts": True}
    off = body_of(build_request("q", reasoning={"budget_tokens": 0}))["generationConfig"]
    assert off["thinkingConfig"] == {"thinkingBudget": 0}
    quiet = body_of(build_request("q", reasoning=Reasoning(budget_tokens=512,
                                                           include_thoughts=False)))
    assert quiet["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 512}


def test_reasoning_effort_is_a_budget_on_gemini_2_and_a_level_on_gemini_3() -> None:
    request = build_request("q", reasoning="medium")
    assert body_of(request, "gemini-2.5-flash")["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 8192, "includeThoughts": True}
    assert body_of(request, "gemini-3-pro-preview")["generationConfig"]["thinkingConfig"] == {
        "thinkingLevel": "medium", "includeThoughts": True}
    with pytest.raises(errors.BadRequestError, match="budget_tokens"):
        body_of(build_request("q", reasoning="extreme"))


def test_extra_is_deep_merged_into_the_body() -> None:
    request = build_request("q", reasoning={"budget_tokens": 100}, extra={
        "generationConfig": {"thinkingConfig": {"includeThoughts": False}, "candidateCount": 1},
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
        "cachedContent": "cachedContents/abc",
    })
    body = body_of(request)
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 100,
                                                          "includeThoughts": False}
    assert body["generationConfig"]["candidateCount"] == 1
    assert body["cachedContent"] == "cachedContents/abc"
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    assert request.extra["generationConfig"]["thinkingConfig"] == {"includeThoughts": False}


# ----------------------------------------------------------------------------- parse


def test_parse_response_reads_text_thinking_signature_id_model_and_usage() -> None:
    body = candidate_body(
        [{"text": "let me think", "thought": True}, {"text": "Paris.", "thoughtSignature": SIG}],
        usage={"promptTokenCount": 345, "cachedContentTokenCount": 230, "candidatesTokenCount": 37,
               "thoughtsTokenCount": 120, "toolUsePromptTokenCount": 15, "totalTokenCount": 517},
    )
    response = DIALECT.parse_response(body, None, "gemini-2.5-flash")
    assert response.id == "resp-1"
    assert response.model == "gemini-2.5-flash-002"
    assert response.provider == G
    assert response.thinking == "let me think"
    assert response.parts[0].provider == G
    assert response.text == "Paris."
    assert response.parts[1].provider_data == {G: {"thoughtSignature": SIG}}
    assert response.finish_reason == "stop"
    assert response.usage == Usage(input_tokens=360, output_tokens=157, cache_read_tokens=230,
                                   reasoning_tokens=120)


def test_parse_response_gives_gemini_2_calls_stable_ids_and_keeps_gemini_3_ids() -> None:
    body = candidate_body([
        {"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": SIG},
        {"functionCall": {"name": "b"}},
        {"functionCall": {"name": "c", "args": {}, "id": "g3id"}},
    ], rid="R9")
    first = DIALECT.parse_response(body, None, "m")
    again = DIALECT.parse_response(body, None, "m")
    assert [c.id for c in first.tool_calls] == ["gemini-call-R9-0", "gemini-call-R9-1", "g3id"]
    assert [c.id for c in again.tool_calls] == [c.id for c in first.tool_calls]
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("a", {"x": 1}), ("b", {}),
                                                                 ("c", {})]
    assert first.tool_calls[0].provider_data == {G: {"thoughtSignature": SIG}}
    assert first.tool_calls[1].provider_data is None
    assert first.finish_reason == "tool_calls"


@pytest.mark.parametrize(("raw", "expected"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
    ("RECITATION", "content_filter"), ("BLOCKLIST", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("MALFORMED_FUNCTION_CALL", "error"), ("SOMETHING_NEW", "error"),
])
def test_finish_reasons_map_to_canonical(raw: str, expected: str) -> None:
    body = candidate_body([{"text": "x"}], finish=raw)
    assert DIALECT.parse_response(body, None, "m").finish_reason == expected


def test_candidate_without_parts_parses_to_an_empty_answer() -> None:
    body = {"candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}],
            "usageMetadata": {"promptTokenCount": 15, "thoughtsTokenCount": 2}}
    response = DIALECT.parse_response(body, None, "gemini-2.5-pro")
    assert response.parts == [] and response.finish_reason == "length"
    assert response.model == "gemini-2.5-pro"
    assert response.usage.output_tokens == 2 and response.usage.reasoning_tokens == 2


def test_blocked_prompt_without_candidates_raises_content_filter_error() -> None:
    body = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 9}}
    with pytest.raises(errors.ContentFilterError, match="PROHIBITED_CONTENT") as info:
        DIALECT.parse_response(body, None, "m")
    assert info.value.code == "PROHIBITED_CONTENT"


def test_error_object_in_a_200_body_is_raised_typed() -> None:
    body = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    with pytest.raises(errors.ServerError, match="overloaded"):
        DIALECT.parse_response(body, None, "m")


def test_grounding_metadata_and_search_units_are_kept() -> None:
    grounding = {"webSearchQueries": ["", "weather Paris", "weather Lyon"],
                 "groundingChunks": [{"web": {"uri": "https://x", "title": "x"}}]}
    body = candidate_body([{"text": "Sunny."}], groundingMetadata=grounding,
                          finishMessage="done")
    body["usageMetadata"]["trafficType"] = "ON_DEMAND_FLEX"
    response = DIALECT.parse_response(body, None, "m")
    assert response.provider_data == {G: {"groundingMetadata": grounding, "finishMessage": "done",
                                          "trafficType": "ON_DEMAND_FLEX"}}
    # gemini-2.5-flash-002: Google bills one grounded prompt, whatever the queries
    assert response.usage.units == {"web_search": 1}
    assert response.usage.service_tier == "flex"  # Vertex's ON_DEMAND_FLEX traffic
    body["modelVersion"] = "gemini-3-flash-preview"  # from Gemini 3: per search query
    assert DIALECT.parse_response(body, None, "m").usage.units == {"web_search": 2}


def test_server_side_tool_parts_are_kept_opaque_and_round_trip() -> None:
    tool_call = {"toolCall": {"id": "t1", "toolType": "GOOGLE_SEARCH_WEB",
                              "args": {"queries": ["q"]}}, "thoughtSignature": "S1"}
    tool_response = {"toolResponse": {"id": "t1", "response": {"x": 1}}, "thoughtSignature": "S2"}
    code = {"executableCode": {"language": "PYTHON", "code": "print(1)"}}
    body = candidate_body([tool_call, tool_response, code, {"text": "1", "thoughtSignature": "S3"}])
    response = DIALECT.parse_response(body, None, "gemini-3-flash-preview")
    assert response.text == "1" and response.thinking == ""
    rebuilt = body_of(build_request([Message.user("q"), response.to_message()]),
                      "gemini-3-flash-preview")
    assert parts_of(rebuilt, 1) == [tool_call, tool_response, code,
                                    {"text": "1", "thoughtSignature": "S3"}]


# ----------------------------------------------------------------------------- stream


def chunk(parts: list[dict[str, Any]], usage: dict[str, Any] | None = None,
          finish: str | None = None, rid: str = "S1", **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    candidate.update(extra)
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash",
                           "responseId": rid}
    if usage is not None:
        out["usageMetadata"] = usage
    return out


def test_stream_merges_split_text_and_takes_the_last_running_usage() -> None:
    events = stream_events([
        chunk([{"text": "Hel"}], {"promptTokenCount": 20, "candidatesTokenCount": 1}),
        chunk([{"text": "lo, "}], {"promptTokenCount": 20, "candidatesTokenCount": 3}),
        chunk([{"text": "world"}], {"promptTokenCount": 20, "candidatesTokenCount": 5,
                                    "thoughtsTokenCount": 9}, finish="STOP"),
    ])
    assert isinstance(events[0], StreamStart) and events[0].id == "S1"
    assert sum(isinstance(e, StreamStart) for e in events) == 1
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hel", "lo, ", "world"]
    assert len({e.block for e in events if isinstance(e, TextDelta)}) == 1
    response = collect(events)
    assert response.text == "Hello, world"
    assert len(response.parts) == 1
    assert response.usage == Usage(input_tokens=20, output_tokens=14, reasoning_tokens=9)
    assert response.finish_reason == "stop"
    assert response.model == "gemini-2.5-flash" and response.id == "S1"


def test_stream_splits_several_function_calls_in_one_chunk_into_indexed_deltas() -> None:
    events = stream_events([chunk([
        {"functionCall": {"name": "a", "args": {"city": "Paris"}}, "thoughtSignature": SIG},
        {"functionCall": {"name": "b", "args": {"n": [1, 2]}}},
    ], {"promptTokenCount": 64, "candidatesTokenCount": 5}, finish="STOP", rid="R9")])
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(d.index, d.id, d.name) for d in deltas] == [
        (0, "gemini-call-R9-0", "a"), (1, "gemini-call-R9-1", "b")]
    assert json.loads(deltas[1].arguments) == {"n": [1, 2]}
    assert deltas[0].provider_data == {G: {"thoughtSignature": SIG}}
    response = collect(events)
    assert [(c.name, c.arguments) for c in response.tool_calls] == [
        ("a", {"city": "Paris"}), ("b", {"n": [1, 2]})]
    assert response.finish_reason == "tool_calls"
    assert [e for e in events if isinstance(e, FinishEvent)] == [FinishEvent("tool_calls")]


def test_stream_attaches_a_trailing_empty_signed_chunk_to_the_merged_text() -> None:
    events = stream_events([
        chunk([{"text": "The capital"}], {"promptTokenCount": 5}),
        chunk([{"text": " is Paris."}], {"promptTokenCount": 5}),
        chunk([{"text": "", "thoughtSignature": SIG}], {"promptTokenCount": 5,
                                                       "candidatesTokenCount": 6}, finish="STOP"),
    ])
    response = collect(events)
    assert len(response.parts) == 1
    assert response.parts[0] == Text("The capital is Paris.", {G: {"thoughtSignature": SIG}})
    rebuilt = body_of(build_request([Message.user("q"), response.to_message()]))
    assert parts_of(rebuilt, 1) == [{"text": "The capital is Paris.", "thoughtSignature": SIG}]


def test_stream_thought_chunks_become_one_gemini_thinking_part_before_signed_text() -> None:
    events = stream_events([
        chunk([{"text": "**Plan**", "thought": True}], {"promptTokenCount": 3,
                                                       "thoughtsTokenCount": 40}),
        chunk([{"text": " more", "thought": True}], {"promptTokenCount": 3,
                                                    "thoughtsTokenCount": 80}),
        chunk([{"text": "Answer", "thoughtSignature": SIG}], {"promptTokenCount": 3,
                                                             "thoughtsTokenCount": 80,
                                                             "candidatesTokenCount": 1}),
        chunk([{"text": " done"}], {"promptTokenCount": 3, "thoughtsTokenCount": 80,
                                    "candidatesTokenCount": 2}, finish="STOP"),
    ])
    response = collect(events)
    assert [type(p).__name__ for p in response.parts] == ["Thinking", "Text"]
    assert response.parts[0].text == "**Plan** more" and response.parts[0].provider == G
    assert response.parts[1] == Text("Answer done", {G: {"thoughtSignature": SIG}})
    assert response.usage.output_tokens == 82 and response.usage.reasoning_tokens == 80


def test_stream_a_second_signature_starts_a_new_part() -> None:
    events = stream_events([
        chunk([{"text": "a", "thoughtSignature": "S1"}]),
        chunk([{"text": "b", "thoughtSignature": "S2"}], {"promptTokenCount": 1}, finish="STOP"),
    ])
    parts = collect(events).parts
    assert parts == [Text("a", {G: {"thoughtSignature": "S1"}}),
                     Text("b", {G: {"thoughtSignature": "S2"}})]


def test_stream_grounding_metadata_reaches_the_collected_response() -> None:
    grounding = {"webSearchQueries": ["largest city"], "groundingChunks": []}
    events = stream_events([
        chunk([{"text": "Mexico City"}], {"promptTokenCount": 9}, groundingMetadata={}),
        chunk([{"text": ""}], {"promptTokenCount": 87, "thoughtsTokenCount": 78}, finish="STOP",
              groundingMetadata=grounding),
    ])
    response = collect(events)
    assert response.provider_data == {G: {"groundingMetadata": grounding}}
    assert response.usage == Usage(input_tokens=87, output_tokens=78, reasoning_tokens=78,
                                   units={"web_search": 1})


def test_stream_cut_before_finish_reason_raises_stream_error() -> None:
    parser = DIALECT.stream_parser(None, "m")
    parser.feed(SSEEvent(json.dumps(chunk([{"text": "partial"}], {"promptTokenCount": 1}))))
    with pytest.raises(errors.StreamError, match="finishReason"):
        parser.close()
    with pytest.raises(errors.StreamError):
        DIALECT.stream_parser(None, "m").close()


def test_stream_malformed_json_and_non_object_chunks_raise_stream_error() -> None:
    with pytest.raises(errors.StreamError, match="not JSON"):
        DIALECT.stream_parser(None, "m").feed(SSEEvent('{"candidates": [{"content": '))
    with pytest.raises(errors.StreamError, match="not a JSON object"):
        DIALECT.stream_parser(None, "m").feed(SSEEvent("[1, 2]"))
    assert DIALECT.stream_parser(None, "m").feed(SSEEvent("")) == []


def test_stream_error_payload_raises_the_typed_error() -> None:
    parser = DIALECT.stream_parser(None, "m")
    parser.feed(SSEEvent(json.dumps(chunk([{"text": "x"}]))))
    payload = {"error": {"code": 429, "message": "Resource exhausted",
                         "status": "RESOURCE_EXHAUSTED",
                         "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                      "retryDelay": "3s"}]}}
    with pytest.raises(errors.RateLimitError) as info:
        parser.feed(SSEEvent(json.dumps(payload)))
    assert info.value.retry_after == 3.0
    with pytest.raises(errors.ServerError):
        DIALECT.stream_parser(None, "m").feed(
            SSEEvent('{"error": {"code": 500, "message": "Internal", "status": "INTERNAL"}}'))


def test_stream_blocked_prompt_raises_content_filter_error() -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"},
               "usageMetadata": {"promptTokenCount": 4}}
    with pytest.raises(errors.ContentFilterError):
        DIALECT.stream_parser(None, "m").feed(SSEEvent(json.dumps(blocked)))


def test_collected_stream_equals_the_non_streamed_parse_of_the_same_answer() -> None:
    parts = [
        {"text": "thinking...", "thought": True},
        {"text": "Calling tools.", "thoughtSignature": "S0"},
        {"functionCall": {"name": "a", "args": {"k": "v"}}, "thoughtSignature": "S1"},
        {"functionCall": {"name": "b", "args": {}}},
    ]
    usage = {"promptTokenCount": 50, "candidatesTokenCount": 20, "thoughtsTokenCount": 30,
             "cachedContentTokenCount": 32}
    whole = DIALECT.parse_response(candidate_body(parts, usage=usage, rid="RX"), None, "m")
    streamed = collect(stream_events([
        chunk(parts[:1], {"promptTokenCount": 50, "thoughtsTokenCount": 30}, rid="RX"),
        chunk(parts[1:2], {"promptTokenCount": 50, "thoughtsTokenCount": 30,
                           "candidatesTokenCount": 4}, rid="RX"),
        chunk(parts[2:], usage, finish="STOP", rid="RX"),
    ]))
    assert streamed.parts == whole.parts
    assert streamed.usage == whole.usage
    assert streamed.finish_reason == whole.finish_reason == "tool_calls"
    assert streamed.id == whole.id


# ----------------------------------------------------------------------------- errors


def google_error(code: int, status: str, message: str, details: list | None = None) -> str:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return json.dumps({"error": error})


def test_invalid_api_key_400_is_an_authentication_error_with_the_key_scrubbed() -> None:
    body = google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                          "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                          "metadata": {"key": "AIzaSyA1234567890abcdefghijklmnop"}}])
    error = DIALECT.parse_error(400, body.encode(), {})
    assert isinstance(error, errors.AuthenticationError)
    assert error.code == "INVALID_ARGUMENT" and error.status == 400
    assert "AIzaSyA1234567890" not in (error.body or "")


@pytest.mark.parametrize(("status", "gstatus", "message", "cls"), [
    (400, "INVALID_ARGUMENT", "Invalid value at 'contents[0]'", errors.BadRequestError),
    (400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the maximum number of "
                              "tokens allowed (1048576).", errors.ContextWindowExceededError),
    (401, "UNAUTHENTICATED", "Request had invalid authentication credentials.",
     errors.AuthenticationError),
    (403, "PERMISSION_DENIED", "Permission denied on resource project p.",
     errors.PermissionDeniedError),
    (403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without "
                               "established identity).", errors.AuthenticationError),
    (404, "NOT_FOUND", "models/gemini-x is not found for API version v1beta",
     errors.NotFoundError),
    (500, "INTERNAL", "An internal error has occurred.", errors.ServerError),
    (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", errors.ServerError),
    (504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.",
     errors.ServerError),
])
def test_google_error_statuses_map_to_typed_errors(status: int, gstatus: str, message: str,
                                                   cls: type) -> None:
    error = DIALECT.parse_error(status, google_error(status, gstatus, message), {})
    assert type(error) is cls
    assert error.code == gstatus and error.message == message
    assert error.retryable == (status >= 500)


def test_rate_limit_retry_delay_comes_from_header_then_retry_info_then_message() -> None:
    retry_info = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]
    body = google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded. Please retry in 3.2s.",
                        retry_info)
    from_detail = DIALECT.parse_error(429, body, {})
    assert isinstance(from_detail, errors.RateLimitError) and from_detail.retry_after == 7.0
    assert DIALECT.parse_error(429, body, {"Retry-After": "12"}).retry_after == 12.0
    assert DIALECT.parse_error(429, body, {"retry-after-ms": "1500"}).retry_after == 1.5
    no_detail = google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded. Please retry in 3.2s.")
    assert DIALECT.parse_error(429, no_detail, {}).retry_after == 3.2
    dated = DIALECT.parse_error(429, no_detail, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert dated.retry_after == 0.0
    assert DIALECT.parse_error(429, "{}", {}).retry_after is None


def test_non_json_error_bodies_still_map_by_status() -> None:
    html = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    error = DIALECT.parse_error(502, html, {"content-type": "text/html"})
    assert isinstance(error, errors.ServerError) and "502" in error.message
    assert isinstance(DIALECT.parse_error(404, "Not Found", {}), errors.NotFoundError)
    assert isinstance(DIALECT.parse_error(400, "", {}), errors.BadRequestError)


def test_vertex_list_wrapped_error_is_read() -> None:
    body = "[" + google_error(400, "INVALID_ARGUMENT", "Unknown name \"foo\"") + "]"
    error = DIALECT.parse_error(400, body, {})
    assert isinstance(error, errors.BadRequestError) and error.message == 'Unknown name "foo"'


# ----------------------------------------------------------------------------- cross-provider


def test_openai_history_builds_a_valid_gemini_request() -> None:
    request = build_request([
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function",
             "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_def", "type": "function",
             "function": {"name": "weather", "arguments": '{"city": "Rome"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_def", "content": '{"temp_c": 24}'},
    ])
    body = body_of(request, "gemini-3-flash-preview")
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    calls = parts_of(body, 1)
    assert [p["functionCall"]["id"] for p in calls] == ["call_abc", "call_def"]
    assert calls[0]["thoughtSignature"] == "skip_thought_signature_validator"
    assert [p["functionResponse"] for p in parts_of(body, 2)] == [
        {"name": "weather", "response": {"result": "18C"}, "id": "call_abc"},
        {"name": "weather", "response": {"temp_c": 24}, "id": "call_def"},
    ]


def test_anthropic_history_drops_foreign_thinking_and_recovers_names() -> None:
    request = build_request([
        Message.user("List files"),
        Message.assistant([
            Thinking("I should call ls", signature="EqQBCkgIARABGAIiQL...", provider="anthropic"),
            Thinking(redacted="EmwKAhgBEgy...", provider="anthropic"),
            Text("Listing."),
            ToolCall.from_arguments("toolu_01A09q90qw90lq917835lq9", "ls", {"path": "/"},
                                    provider_data={"anthropic": {"caller": "direct"}}),
        ]),
        Message("user", [ToolResult("toolu_01A09q90qw90lq917835lq9", "a.txt")]),
    ])
    body = body_of(request, "gemini-2.5-pro")
    assert parts_of(body, 1) == [
        {"text": "Listing."},
        {"functionCall": {"name": "ls", "args": {"path": "/"},
                          "id": "toolu_01A09q90qw90lq917835lq9"}},
    ]
    assert parts_of(body, 2)[0]["functionResponse"]["name"] == "ls"
    assert "EqQBCkgIARABGAIiQL" not in json.dumps(body)


# ----------------------------------------------------------------------------- round trips


def test_next_turn_after_a_parsed_answer_returns_signatures_on_the_same_parts() -> None:
    body = candidate_body([
        {"text": "pondering", "thought": True, "thoughtSignature": "T"},
        {"text": "I'll check both."},
        {"functionCall": {"name": "a", "args": {"q": 1}}, "thoughtSignature": "C"},
        {"functionCall": {"name": "b", "args": {}}},
    ], rid="R1")
    answer = DIALECT.parse_response(body, None, "gemini-3-flash-preview")
    calls = answer.tool_calls
    request = build_request([
        Message.user("go"),
        answer.to_message(),
        Message.tool(calls[0].id, "one"),
        Message.tool(calls[1].id, "two"),
    ])
    rebuilt = body_of(request, "gemini-3-flash-preview")
    assert parts_of(rebuilt, 1) == [
        {"text": "pondering", "thought": True, "thoughtSignature": "T"},
        {"text": "I'll check both."},
        {"functionCall": {"name": "a", "args": {"q": 1}}, "thoughtSignature": "C"},
        {"functionCall": {"name": "b", "args": {}}},
    ]
    assert parts_of(rebuilt, 2) == [
        {"functionResponse": {"name": "a", "response": {"result": "one"}}},
        {"functionResponse": {"name": "b", "response": {"result": "two"}}},
    ]


def test_gemini_3_call_ids_round_trip_into_function_responses() -> None:
    body = candidate_body([{"functionCall": {"name": "f", "args": {}, "id": "abc123"},
                            "thoughtSignature": "C"}])
    answer = DIALECT.parse_response(body, None, "gemini-3-pro-preview")
    request = build_request([Message.user("go"), answer.to_message(), Message.tool("abc123", "r")])
    rebuilt = body_of(request, "gemini-3-pro-preview")
    assert parts_of(rebuilt, 1)[0]["functionCall"]["id"] == "abc123"
    assert parts_of(rebuilt, 2)[0]["functionResponse"]["id"] == "abc123"


def test_every_part_kind_survives_canonical_to_wire() -> None:
    request = build_request([
        Message.system("sys"),
        Message.user([Text("t"), Image(data=PNG), Audio(url="https://a/x.wav"),
                      File(url="https://a/x.pdf")]),
        Message.assistant([
            Thinking("th", provider=G, provider_data={G: {"thoughtSignature": "A"}}),
            Text("tx", provider_data={G: {"thoughtSignature": "B"}}),
            ToolCall.from_arguments("id1", "f", {"a": [1]},
                                    provider_data={G: {"thoughtSignature": "C"}}),
        ]),
        Message.tool("id1", "res"),
    ])
    body = body_of(request)
    kinds = [[next(iter(k for k in p if k != "thoughtSignature")) for p in c["parts"]]
             for c in body["contents"]]
    assert kinds == [["text", "inlineData", "fileData", "fileData"],
                     ["text", "text", "functionCall"],
                     ["functionResponse"]]
    assert [p.get("thoughtSignature") for p in parts_of(body, 1)] == ["A", "B", "C"]


# ----------------------------------------------------------------------------- fake replies


def fetch(fake: FakeProvider, reply: Any, *, stream: bool) -> Response:
    fake.add(reply)
    http = DIALECT.build_request(build_request("hi"), "gemini-2.5-flash", stream=stream)
    with httpx.Client(base_url=fake.url) as client:
        answer = client.post(http.path, json=http.json)
    if answer.status_code >= 400:
        raise DIALECT.parse_error(answer.status_code, answer.content, answer.headers)
    if not stream:
        return DIALECT.parse_response(answer.json(), None, "gemini-2.5-flash")
    parser = DIALECT.stream_parser(None, "gemini-2.5-flash")
    decoder = SSEDecoder()
    events = [e for sse_event in decoder.feed(answer.content) + decoder.flush()
              for e in parser.feed(sse_event)]
    return collect(events + parser.close())


def test_fake_replies_parse_back_to_their_content_and_usage(fake: FakeProvider) -> None:
    usage = Usage(input_tokens=900, output_tokens=120, cache_read_tokens=512, reasoning_tokens=80)
    text = fetch(fake, replies_gemini.text_reply("Hi!", usage=usage, thinking="hmm"), stream=False)
    assert (text.text, text.thinking, text.usage) == ("Hi!", "hmm", usage)
    calls = fetch(fake, replies_gemini.tool_call_reply([("f", {"a": 1}), ("g", {})]), stream=False)
    assert [(c.name, c.arguments) for c in calls.tool_calls] == [("f", {"a": 1}), ("g", {})]
    assert calls.usage == replies_gemini.DEFAULT_USAGE
    streamed = fetch(fake, replies_gemini.text_stream(["Hel", "lo"], usage=usage), stream=True)
    assert (streamed.text, streamed.usage, streamed.finish_reason) == ("Hello", usage, "stop")
    streamed_calls = fetch(fake, replies_gemini.tool_call_stream([("f", {"x": "y"})]), stream=True)
    assert streamed_calls.tool_calls[0].arguments == {"x": "y"}
    assert streamed_calls.finish_reason == "tool_calls"


def test_fake_error_reply_carries_retry_info(fake: FakeProvider) -> None:
    with pytest.raises(errors.RateLimitError) as info:
        fetch(fake, replies_gemini.error_reply(429, "Quota exceeded", retry_after=7), stream=False)
    assert info.value.retry_after == 7.0
    with pytest.raises(errors.NotFoundError):
        fetch(fake, replies_gemini.error_reply(404, "models/x is not found"), stream=False)


def test_usage_event_totals_replace_each_other_in_the_stream() -> None:
    events = stream_events([
        chunk([{"text": "a"}], {"promptTokenCount": 10, "candidatesTokenCount": 1}),
        chunk([{"text": "b"}], {"promptTokenCount": 10, "candidatesTokenCount": 2}, finish="STOP"),
    ])
    totals = [e.usage.output_tokens for e in events if isinstance(e, UsageEvent)]
    assert totals == [1, 2]
    assert collect(events).usage.input_tokens == 10  # not 20: running totals are not summed
