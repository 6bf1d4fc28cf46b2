"""Every dialect treats a history tool call whose arguments are not a JSON object the
same way: ToolArgumentsError naming the tool and quoting what the model wrote, raised
while the request is built (nothing is sent). Valid arguments go out as the model wrote
them (byte-exact where the wire carries a string)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tollway.core.errors import ToolArgumentsError
from tollway.core.providers import dialect_for
from tollway.core.types import Message, Request, ToolCall, ToolResult

DIALECTS = ["openai_chat", "openai_responses", "anthropic", "gemini"]


def _request(call: ToolCall) -> Request:
    return Request([
        Message.user("What is the weather?"),
        Message.assistant([call]),
        Message("tool", [ToolResult(call.id, "sunny", name=call.name)]),
    ])


def _sent_arguments(dialect: str, body: dict[str, Any]) -> Any:
    """The arguments of the one history call, as each wire format carries them."""
    if dialect == "openai_chat":
        return body["messages"][1]["tool_calls"][0]["function"]["arguments"]
    if dialect == "openai_responses":
        return next(i for i in body["input"] if i.get("type") == "function_call")["arguments"]
    if dialect == "anthropic":
        return body["messages"][1]["content"][0]["input"]
    return body["contents"][1]["parts"][0]["functionCall"]["args"]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(("raw", "reason"), [
    ('{"city": "Par', "not JSON"),
    ("city=Paris", "not JSON"),
    ('["Paris"]', "expected a JSON object"),
    ('"Paris"', "expected a JSON object"),
])
def test_history_arguments_that_are_not_a_json_object_are_a_tool_arguments_error(
    dialect: str, raw: str, reason: str
) -> None:
    call = ToolCall.from_raw("call_1", "get_weather", raw)
    with pytest.raises(ToolArgumentsError, match=reason) as info:
        dialect_for(dialect).build_request(_request(call), "m", stream=False)
    assert info.value.tool == "get_weather" and info.value.raw == raw
    assert "get_weather" in str(info.value) and raw in str(info.value)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_valid_history_arguments_are_sent_as_the_model_wrote_them(dialect: str) -> None:
    raw = '{"city": "Paris",  "days": 2}'
    body = dialect_for(dialect).build_request(
        _request(ToolCall.from_raw("call_1", "get_weather", raw)), "m", stream=False
    ).json
    sent = _sent_arguments(dialect, body)
    if isinstance(sent, str):
        assert sent == raw  # byte-exact round trip
    else:
        assert sent == json.loads(raw)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_empty_history_arguments_are_an_empty_object(dialect: str) -> None:
    body = dialect_for(dialect).build_request(
        _request(ToolCall.from_raw("call_1", "now", "")), "m", stream=False
    ).json
    sent = _sent_arguments(dialect, body)
    assert (json.loads(sent) if isinstance(sent, str) else sent) == {}
