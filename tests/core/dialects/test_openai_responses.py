"""The Responses dialect as pure functions: canonical Request -> body, bodies and
events -> Response / errors. No server (the dialect is sans-I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tollway.core.dialects.base import SSEEvent
from tollway.core.dialects.openai_responses import DIALECT, NAME, OpenAIResponsesDialect
from tollway.core.errors import (
    BadRequestError,
    ContentFilterError,
    RateLimitError,
    ServerError,
)
from tollway.core.types import (
    Image,
    Message,
    NamedTool,
    Reasoning,
    Request,
    ResponseFormat,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolResult,
)

CITY = Tool("get_city", "A city", {"type": "object", "properties": {"q": {"type": "string"}}})


def body(request: Request, model: str = "gpt-5-mini", **kw: Any) -> dict[str, Any]:
    return OpenAIResponsesDialect(**kw).build_request(request, model, stream=False).json


def own_reasoning(item_id: str, encrypted: str | None = "gAAAA-enc") -> Thinking:
    item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": []}
    if encrypted:
        item["encrypted_content"] = encrypted
    return Thinking("", provider=NAME, provider_data={NAME: {"item": item}})


def own_call(call_id: str, item_id: str) -> ToolCall:
    return ToolCall.from_raw(call_id, "get_city", '{"q":"x"}', {NAME: {"id": item_id}})


def test_request_fields_map_to_their_responses_names() -> None:
    request = Request(
        [Message.system("Be brief."), Message.user("hi")],
        tools=[CITY, Tool("strict_one", "", {"type": "object", "properties": {
            "a": {"type": "string"}}}, strict=True)],
        tool_choice=NamedTool("get_city"),
        response_format=ResponseFormat({"type": "object", "properties": {
            "c": {"type": "string"}}}, name="Answer"),
        temperature=0.2, top_p=0.9, max_tokens=300, stop=["\nObservation:"], seed=7,
        parallel_tool_calls=False, reasoning=Reasoning(effort="high"),
    )
    sent = body(request)
    assert sent["instructions"] == "Be brief."
    assert sent["input"] == [{"role": "user", "content": "hi"}]
    assert sent["tools"][0] == {"type": "function", "name": "get_city", "description": "A city",
                                "parameters": CITY.parameters, "strict": False}
    assert sent["tools"][1]["strict"] is True
    assert sent["tools"][1]["parameters"]["additionalProperties"] is False
    assert sent["tool_choice"] == {"type": "function", "name": "get_city"}
    assert sent["text"]["format"]["type"] == "json_schema"
    assert sent["text"]["format"]["name"] == "Answer"
    assert sent["text"]["format"]["schema"]["required"] == ["c"]
    assert (sent["temperature"], sent["top_p"], sent["max_output_tokens"]) == (0.2, 0.9, 300)
    assert sent["parallel_tool_calls"] is False
    assert sent["reasoning"] == {"effort": "high", "summary": "auto"}
    assert sent["store"] is False and sent["include"] == ["reasoning.encrypted_content"]
    assert "seed" not in sent and "stop" not in sent


def test_a_token_budget_maps_to_the_nearest_effort_and_thoughts_can_be_left_out() -> None:
    for budget, effort in ((1024, "low"), (8000, "medium"), (30000, "high")):
        reasoning = Reasoning(budget_tokens=budget, include_thoughts=False)
        assert body(Request([Message.user("x")], reasoning=reasoning))["reasoning"] == {
            "effort": effort}


def test_storing_drops_the_encrypted_include_and_extra_includes_are_added() -> None:
    request = Request([Message.user("x")], extra={"store": True, "include": ["x.y"]})
    sent = body(request)
    assert sent["store"] is True and sent["include"] == ["x.y"]
    plain = body(Request([Message.user("x")], extra={"include": ["x.y"]}), model="gpt-4o")
    assert plain["include"] == ["x.y"]  # gpt-4o does not reason: nothing to encrypt


def test_built_in_tools_from_extra_join_the_function_tools() -> None:
    sent = body(Request([Message.user("x")], tools=[CITY],
                        extra={"tools": [{"type": "web_search"}], "service_tier": "flex"}))
    assert [t["type"] for t in sent["tools"]] == ["function", "web_search"]
    assert sent["service_tier"] == "flex"


def test_previous_response_id_sends_only_the_turns_after_the_last_answer() -> None:
    history = [
        Message.system("sys"), Message.user("one"), Message.assistant("first answer"),
        Message.tool("call_1", "result"), Message.user("two"),
    ]
    sent = body(Request(history, extra={"previous_response_id": "resp_1", "store": True}))
    assert sent["previous_response_id"] == "resp_1"
    assert sent["instructions"] == "sys"
    assert sent["input"] == [
        {"type": "function_call_output", "call_id": "call_1", "output": "result"},
        {"role": "user", "content": "two"},
    ]


def test_foreign_thinking_is_never_sent() -> None:
    assistant = Message("assistant", [
        Thinking("anthropic thoughts", signature="sig-anthropic", provider="anthropic"),
        Thinking("gemini", provider="gemini", provider_data={"gemini": {"thoughtSignature": "g"}}),
        Text("Calling."), ToolCall.from_raw("toolu_1", "get_city", "{}"),
    ])
    sent = body(Request([Message.user("x"), assistant, Message.tool("toolu_1", "ok")]))
    assert "sig-anthropic" not in json.dumps(sent) and "thoughts" not in json.dumps(sent)
    assert sent["input"][1:] == [
        {"role": "assistant", "content": "Calling."},
        {"type": "function_call", "call_id": "toolu_1", "name": "get_city", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "toolu_1", "output": "ok"},
    ]


def test_own_reasoning_goes_back_with_its_item_ids() -> None:
    assistant = Message("assistant", [own_reasoning("rs_1"), own_call("call_1", "fc_1")])
    sent = body(Request([Message.user("x"), assistant, Message.tool("call_1", "ok")]))
    assert sent["input"][1] == {"id": "rs_1", "type": "reasoning", "summary": [],
                                "encrypted_content": "gAAAA-enc"}
    assert sent["input"][2]["id"] == "fc_1"


def test_reasoning_without_encrypted_content_is_dropped_with_the_turns_item_ids() -> None:
    """Not stored and not encrypted: the item cannot be referenced, and OpenAI rejects a
    function_call id whose reasoning item is missing, so the ids go too."""
    assistant = Message("assistant", [own_reasoning("rs_1", None), own_call("call_1", "fc_1")])
    history = [Message.user("x"), assistant, Message.tool("call_1", "ok")]
    sent = body(Request(history))
    assert [i.get("type") for i in sent["input"][1:]] == ["function_call", "function_call_output"]
    assert "id" not in sent["input"][1]
    stored = body(Request(history, extra={"store": True}))
    assert stored["input"][1] == {"id": "rs_1", "type": "reasoning", "summary": []}
    assert stored["input"][2]["id"] == "fc_1"


def test_tool_results_in_a_user_message_and_media_outputs() -> None:
    image = Image(url="https://example.org/a.png")
    user = Message("user", [ToolResult("call_1", [Text("see"), image]), Text("next?")])
    sent = body(Request([user]))
    assert sent["input"] == [
        {"type": "function_call_output", "call_id": "call_1", "output": [
            {"type": "input_text", "text": "see"},
            {"type": "input_image", "image_url": "https://example.org/a.png", "detail": "auto"},
        ]},
        {"role": "user", "content": "next?"},
    ]


def test_bad_requests_say_what_to_do() -> None:
    with pytest.raises(BadRequestError, match="not among the tools"):
        body(Request([Message.user("x")], tools=[CITY], tool_choice=NamedTool("nope")))
    with pytest.raises(BadRequestError, match="only hold ToolResult"):
        body(Request([Message("tool", [Text("x")])]))


# --------------------------------------------------------------------------- responses


def response(output: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"id": "resp_1", "model": "gpt-5", "status": "completed", "output": output,
            "usage": {"input_tokens": 10, "output_tokens": 5,
                      "input_tokens_details": {"cached_tokens": 4},
                      "output_tokens_details": {"reasoning_tokens": 2}}, **fields}


def test_a_refusal_is_content_filter_and_round_trips_as_a_refusal() -> None:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
               "content": [{"type": "refusal", "refusal": "I can't help with that."}]}
    parsed = DIALECT.parse_response(response([message]), None, "gpt-5")
    assert parsed.finish_reason == "content_filter"
    assert parsed.text == "I can't help with that."
    again = body(Request([Message.user("x"), parsed.to_message(), Message.user("y")]))
    assert again["input"][1] == {"type": "message", "role": "assistant", "id": "msg_1",
                                 "status": "completed", "content": [
                                     {"type": "refusal", "refusal": "I can't help with that."}]}


def test_incomplete_for_content_filter_and_file_search_units() -> None:
    search = {"id": "fs_1", "type": "file_search_call", "status": "completed", "queries": ["q"]}
    parsed = DIALECT.parse_response(
        response([search], status="incomplete",
                 incomplete_details={"reason": "content_filter"}), None, "gpt-5")
    assert parsed.finish_reason == "content_filter"
    assert parsed.usage.units == {"file_search": 1}
    assert (parsed.usage.input_tokens, parsed.usage.cache_read_tokens) == (10, 4)
    # the search item goes back verbatim on the next turn
    again = body(Request([Message.user("x"), parsed.to_message(), Message.user("y")]))
    assert again["input"][1] == search


@pytest.mark.parametrize(("error", "kind"), [
    ({"code": "rate_limit_exceeded", "message": "slow down"}, RateLimitError),
    ({"code": "invalid_prompt", "message": "flagged"}, ContentFilterError),
    ({"code": "server_error", "message": "oops"}, ServerError),
])
def test_a_failed_response_body_raises_the_typed_error(
    error: dict[str, Any], kind: type[Exception]
) -> None:
    with pytest.raises(kind, match=error["message"]):
        DIALECT.parse_response(response([], status="failed", error=error), None, "gpt-5")


def test_a_body_that_is_not_a_response_is_a_server_error() -> None:
    with pytest.raises(ServerError, match="no output list"):
        DIALECT.parse_response({"choices": []}, None, "gpt-5")


def test_stream_items_sent_only_whole_are_not_lost() -> None:
    """Some compatible servers send no deltas, only finished items: they still count."""
    parser = DIALECT.stream_parser(None, "m")
    message = {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": "Whole.", "annotations": []}]}
    call = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "f",
            "arguments": '{"a":1}'}
    events = []
    for payload in (
        {"type": "response.created", "response": {"id": "resp_1", "model": "m"}},
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {"type": "response.output_item.added", "output_index": 1,
         "item": {**call, "arguments": ""}},
        {"type": "response.output_item.done", "output_index": 1, "item": call},
        {"type": "response.completed", "response": response([message, call])},
    ):
        events += parser.feed(SSEEvent(json.dumps(payload)))
    from tollway.core.types import StreamAccumulator

    acc = StreamAccumulator()
    for event in events:
        acc.add(event)
    streamed = acc.response(provider=NAME, model="m")
    parsed = DIALECT.parse_response(response([message, call]), None, "m")
    assert (streamed.parts, streamed.finish_reason, streamed.usage) == (
        parsed.parts, parsed.finish_reason, parsed.usage)
