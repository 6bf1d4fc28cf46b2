"""Replay every recorded OpenAI chat-completions interaction through the dialect.

The expected values are read straight from the raw recorded body with small,
independent code (no tollway parsing), then compared with what the dialect makes of
the same body: text, tool calls (names and parsed arguments), finish reason, usage
numbers, errors. The recorded request is also rebuilt from its canonical form.
Skips cleanly when the corpus folder is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import corpus_dir
from tollway.core.dialects.base import SSEEvent
from tollway.core.dialects.openai_chat import (
    DIALECT,
    OpenAIChatDialect,
)
from tollway.core.dialects.openai_interchange.codec import (
    request_from_openai,
    response_to_openai,
    stream_to_openai_chunks,
)
from tollway.core.errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamError,
)
from tollway.core.sse import SSEDecoder
from tollway.core.types import Response, StreamAccumulator, StreamEvent, Usage


def _interactions() -> list[Any]:
    folder = corpus_dir()
    if not folder.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no corpus at {folder}"))]
    found = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("provider") == "openai" and record.get("endpoint") == "chat.completions":
            found.append(pytest.param(path, id=path.stem))
    return found


INTERACTIONS = _interactions()
SUCCESSES = [
    p
    for p in INTERACTIONS
    if p.values[0] is None or json.loads(p.values[0].read_text())["status"] == 200
]
FAILURES = [
    p
    for p in INTERACTIONS
    if p.values[0] is None or json.loads(p.values[0].read_text())["status"] != 200
]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def is_stream(record: dict[str, Any]) -> bool:
    return "text/event-stream" in record["response_headers"].get("content-type", "")


# --------------------------------------------------------------------------- expected values


def expected_finish(raw: str | None, has_calls: bool) -> str:
    """OpenAI's finish reason in tollway's vocabulary; a turn with tool calls is
    ``tool_calls`` even when OpenAI says ``stop`` (forced named tool)."""
    table = {
        "stop": "stop",
        "length": "length",
        "tool_calls": "tool_calls",
        "function_call": "tool_calls",
        "content_filter": "content_filter",
    }
    reason = table.get(raw or "", "stop")
    return "tool_calls" if reason == "stop" and has_calls else reason


def expected_usage(usage: dict[str, Any] | None) -> tuple[int, int, int, int]:
    """(input incl. cached, cache_read, output incl. reasoning, reasoning)."""
    usage = usage or {}
    return (
        usage.get("prompt_tokens", 0),
        (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
        usage.get("completion_tokens", 0),
        (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0),
    )


def expected_from_json(body: dict[str, Any]) -> dict[str, Any]:
    choice = body["choices"][0]
    message = choice["message"]
    calls = [
        (c["id"], c["function"]["name"], c["function"]["arguments"])
        for c in message.get("tool_calls") or []
    ]
    return {
        "id": body["id"],
        "model": body["model"],
        "text": (message.get("content") or "") + (message.get("refusal") or ""),
        "calls": [(i, name, json.loads(raw or "{}")) for i, name, raw in calls],
        "raw_arguments": [raw for _, _, raw in calls],
        "finish": expected_finish(choice["finish_reason"], bool(calls)),
        "usage": expected_usage(body.get("usage")),
    }


def expected_from_sse(raw: str) -> dict[str, Any]:
    """Read the SSE text line by line: concatenate content, group tool-call fragments by
    index, keep the finish reason and the usage the stream reported."""
    text = ""
    calls: dict[int, dict[str, str]] = {}
    finish = None
    usage = None
    ident = model = None
    for line in raw.splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if not data or data == "[DONE]":
            continue
        chunk = json.loads(data)
        ident = ident or chunk.get("id")
        model = model or chunk.get("model")
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text += (delta.get("content") or "") + (delta.get("refusal") or "")
            for fragment in delta.get("tool_calls") or []:
                call = calls.setdefault(fragment["index"], {"id": "", "name": "", "arguments": ""})
                function = fragment.get("function") or {}
                call["id"] = call["id"] or fragment.get("id") or ""
                call["name"] = call["name"] or function.get("name") or ""
                call["arguments"] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    ordered = [c for _, c in sorted(calls.items())]
    parsed_calls = [(c["id"], c["name"], json.loads(c["arguments"] or "{}")) for c in ordered]
    return {
        "id": ident,
        "model": model,
        "text": text,
        "calls": parsed_calls,
        "raw_arguments": [c["arguments"] for c in ordered],
        "finish": expected_finish(finish, bool(parsed_calls)),
        "usage": expected_usage(usage),
    }


def actual(response: Response) -> dict[str, Any]:
    u: Usage = response.usage
    return {
        "id": response.id,
        "model": response.model,
        "text": response.text,
        "calls": [(c.id, c.name, c.parse_arguments()) for c in response.tool_calls],
        "raw_arguments": [c.raw_arguments for c in response.tool_calls],
        "finish": response.finish_reason,
        "usage": (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens),
    }


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("path", SUCCESSES)
def test_recorded_reply_parses_to_the_values_in_the_raw_body(path: Path) -> None:
    record = load(path)
    if is_stream(record):
        expected = expected_from_sse(record["response_body"])
    else:
        expected = expected_from_json(json.loads(record["response_body"]))
    response, _ = replay(record, record["request"]["model"])
    assert actual(response) == expected
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


def replay(record: dict[str, Any], model: str) -> tuple[Response, list[StreamEvent]]:
    """The dialect's Response for a recorded reply, and the stream events if streamed."""
    if not is_stream(record):
        return DIALECT.parse_response(json.loads(record["response_body"]), None, model), []
    decoder = SSEDecoder()
    parser = DIALECT.stream_parser(None, model)
    events: list[StreamEvent] = []
    for event in [*decoder.feed(record["response_body"]), *decoder.flush()]:
        events.extend(parser.feed(event))
    events.extend(parser.close())
    acc = StreamAccumulator()
    for stream_event in events:
        acc.add(stream_event)
    return acc.response(provider=DIALECT.name, model=model), events


@pytest.mark.parametrize("path", SUCCESSES)
def test_recorded_reply_survives_the_gateway_round_trip(path: Path) -> None:
    """Served back to an OpenAI client (JSON or chunks) and parsed again, the recorded
    reply gives the same Response: nothing is lost in the reverse direction."""
    record = load(path)
    response, events = replay(record, record["request"]["model"])
    if not events:
        again = DIALECT.parse_response(response_to_openai(response), None, "m")
        assert again == response
        return
    chunks = stream_to_openai_chunks(events, id=response.id, model=response.model, created=1)
    parser = DIALECT.stream_parser(None, "m")
    acc = StreamAccumulator()
    for chunk in chunks:
        for stream_event in parser.feed(SSEEvent(json.dumps(chunk))):
            acc.add(stream_event)
    again = acc.response(provider=DIALECT.name, model="m")
    assert (again.id, again.model, again.parts, again.finish_reason, again.usage) == (
        response.id,
        response.model,
        response.parts,
        response.finish_reason,
        response.usage,
    )


@pytest.mark.parametrize("path", [p for p in SUCCESSES if p.values[0] is None or "_stream" in p.id])
def test_recorded_stream_cut_before_its_finish_chunk_is_a_stream_error(path: Path) -> None:
    record = load(path)
    decoder = SSEDecoder()
    parser = DIALECT.stream_parser(None, "m")
    for event in decoder.feed(record["response_body"]):
        if '"finish_reason":"' in event.data.replace(" ", ""):
            break  # the connection drops here
        parser.feed(event)
    with pytest.raises(StreamError, match="ended before"):
        parser.close()


def expected_error_class(status: int, error: dict[str, Any]) -> type[ProviderError]:
    if error.get("code") == "context_length_exceeded":
        return ContextWindowExceededError
    by_status: dict[int, type[ProviderError]] = {
        400: BadRequestError,
        401: AuthenticationError,
        403: PermissionDeniedError,
        404: NotFoundError,
        422: BadRequestError,
        429: RateLimitError,
    }
    return by_status.get(status, ServerError)


@pytest.mark.parametrize("path", FAILURES)
def test_recorded_error_maps_to_the_right_class_with_status_and_code(path: Path) -> None:
    record = load(path)
    status = record["status"]
    error = json.loads(record["response_body"])["error"]
    err = DIALECT.parse_error(status, record["response_body"].encode(), record["response_headers"])
    assert type(err) is expected_error_class(status, error)
    assert err.status == status
    assert err.code == (error.get("code") or error.get("type"))
    assert error["message"][:40] in str(err)


def normalize(body: dict[str, Any]) -> dict[str, Any]:
    """The recorded request in the canonical spelling the dialect emits: no
    ``stream: false``, a lone text part as a plain string, ``content: null`` for an
    assistant turn without text, no empty tool descriptions."""
    out = json.loads(json.dumps(body))
    if out.get("stream") is False:
        del out["stream"]
    for message in out["messages"]:
        content = message.get("content")
        if (
            isinstance(content, list)
            and len(content) == 1
            and content[0].keys() == {"type", "text"}
        ):
            message["content"] = content[0]["text"]
        if message["role"] == "assistant":
            message.setdefault("content", None)
    for tool in out.get("tools") or []:
        if tool["function"].get("description") == "":
            del tool["function"]["description"]
    return out


@pytest.mark.parametrize("path", INTERACTIONS)
def test_recorded_request_is_rebuilt_from_its_canonical_form(path: Path) -> None:
    recorded = load(path)["request"]
    roles = {m["role"] for m in recorded["messages"]}
    dialect = OpenAIChatDialect(system_role="developer" if "developer" in roles else "system")
    model, request, stream = request_from_openai(recorded)
    assert stream == bool(recorded.get("stream"))
    rebuilt = dialect.build_request(request, model, stream=stream)
    assert rebuilt.path == "/chat/completions"
    assert rebuilt.json == normalize(recorded)
