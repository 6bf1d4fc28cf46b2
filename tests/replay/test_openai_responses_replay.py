"""Replay every recorded OpenAI Responses interaction through the dialect.

Expected values are read from the raw recorded body with small, independent code (no
tollway parsing): text, refusals, function calls, reasoning summaries and encrypted
content, server-run items (web / file search, code interpreter), finish reason and
usage. Every recorded stream is also collected and compared with the dialect's parse
of its own ``response.completed`` body. Error bodies map to the typed hierarchy, and
each recorded request is rebuilt from a canonical Request. Skips cleanly when the corpus
folder is absent.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import corpus_dir
from tollway.core.dialects.openai_responses import DIALECT, NAME, OpenAIResponsesDialect
from tollway.core.errors import BadRequestError, NotFoundError, ProviderError, StreamError
from tollway.core.sse import SSEDecoder
from tollway.core.types import (
    File,
    Image,
    Message,
    NamedTool,
    Part,
    Reasoning,
    Request,
    Response,
    ResponseFormat,
    StreamAccumulator,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolResult,
)


def _interactions() -> list[Any]:
    folder = corpus_dir()
    if not folder.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no corpus at {folder}"))]
    found = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("provider") == "openai" and record.get("endpoint") == "responses":
            found.append(pytest.param(path, id=path.stem))
    return found


INTERACTIONS = _interactions()


def _status(param: Any) -> int | None:
    path = param.values[0]
    return None if path is None else json.loads(path.read_text())["status"]


SUCCESSES = [p for p in INTERACTIONS if _status(p) in (None, 200)]
FAILURES = [p for p in INTERACTIONS if _status(p) in (None,) or (_status(p) or 200) != 200]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def is_stream(record: dict[str, Any]) -> bool:
    return "text/event-stream" in record["response_headers"].get("content-type", "")


def sse_events(raw: str) -> list[dict[str, Any]]:
    """The JSON payloads of a recorded stream, read line by line."""
    return [json.loads(line[5:]) for line in raw.splitlines() if line.startswith("data:")]


def final_body(record: dict[str, Any]) -> dict[str, Any]:
    if not is_stream(record):
        return json.loads(record["response_body"])
    (done,) = [e for e in sse_events(record["response_body"]) if e["type"] == "response.completed"]
    return done["response"]


# --------------------------------------------------------------------------- expected values


def expected(body: dict[str, Any]) -> dict[str, Any]:
    """What a correct translation must give, computed from the raw output items."""
    text, calls, thinking, encrypted, hosted, images = "", [], [], [], [], []
    searches = files = 0
    image_units: dict[str, int] = {}
    image_tools = [t for t in body.get("tools") or () if t.get("type") == "image_generation"]
    image_model = (image_tools[0].get("model") if image_tools else None) or "gpt-image-1"
    for item in body["output"]:
        kind = item["type"]
        if kind == "message":
            for part in item["content"]:
                text += part.get("text") or part.get("refusal") or ""
        elif kind == "function_call":
            calls.append((item["call_id"], item["name"], json.loads(item["arguments"] or "{}")))
        elif kind == "reasoning":
            thinking.append("\n\n".join(s["text"] for s in item["summary"]))
            encrypted.append(item.get("encrypted_content"))
        elif kind == "image_generation_call" and item.get("result"):
            data = base64.b64decode(item["result"])
            images.append((item["id"], len(data), f"image/{item['output_format']}"))
            unit = f"image_generation:{image_model}:{item['size']}:{item['quality']}"
            image_units[unit] = image_units.get(unit, 0) + 1
        else:
            hosted.append(item["id"])
            searches += kind == "web_search_call"
            files += kind == "file_search_call"
    usage = body["usage"]
    finish = "length" if body["status"] == "incomplete" else "tool_calls" if calls else "stop"
    units = {k: v for k, v in (("web_search", searches), ("file_search", files)) if v}
    units.update(image_units)
    return {
        "id": body["id"],
        "model": body["model"],
        "text": text,
        "calls": calls,
        "thinking": thinking,
        "encrypted": encrypted,
        "hosted": hosted,
        "images": images,
        "finish": finish,
        "usage": (
            usage["input_tokens"],
            usage["input_tokens_details"]["cached_tokens"],
            usage["output_tokens"],
            usage["output_tokens_details"]["reasoning_tokens"],
            units,
        ),
    }


def actual(response: Response) -> dict[str, Any]:
    u = response.usage
    reasoning = [p for p in response.parts if isinstance(p, Thinking)]
    hosted = [
        p.provider_data[NAME]["item"]["id"]
        for p in response.parts
        if isinstance(p, Text) and p.provider_data
        and p.provider_data[NAME]["item"].get("type") not in (None, "message")
    ]
    return {
        "id": response.id,
        "model": response.model,
        "text": response.text,
        "calls": [(c.id, c.name, c.parse_arguments()) for c in response.tool_calls],
        "thinking": [p.text for p in reasoning],
        "encrypted": [p.provider_data[NAME]["item"].get("encrypted_content") for p in reasoning],
        "hosted": hosted,
        "images": [
            (p.provider_data[NAME]["item"]["id"], len(p.data or b""), p.media_type)
            for p in response.images if p.provider_data
        ],
        "finish": response.finish_reason,
        "usage": (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens,
                  u.units),
    }


def collect(raw: str) -> Response:
    decoder = SSEDecoder()
    parser = DIALECT.stream_parser(None, "m")
    acc = StreamAccumulator()
    for event in [*decoder.feed(raw), *decoder.flush()]:
        for stream_event in parser.feed(event):
            acc.add(stream_event)
    for stream_event in parser.close():
        acc.add(stream_event)
    return acc.response(provider=DIALECT.name, model="m")


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("path", SUCCESSES)
def test_recorded_reply_parses_to_the_values_in_the_raw_body(path: Path) -> None:
    record = load(path)
    body = final_body(record)
    response = DIALECT.parse_response(body, None, "m")
    assert actual(response) == expected(body)


_ENCRYPTED = re.compile(r"'encrypted_content': '[^']*'")


def _masked(response: Response) -> tuple[Any, ...]:
    """The Response with encrypted reasoning blobs masked: OpenAI re-encrypts them each
    time it serializes an item, so the copy in ``output_item.done`` and the one in
    ``response.completed`` differ byte-wise (both are valid input)."""
    return (
        response.id, response.model, response.finish_reason, response.usage,
        response.provider_data, _ENCRYPTED.sub("ENC", repr(response.parts)),
    )


@pytest.mark.parametrize("path", [p for p in SUCCESSES if p.values[0] is None or "_stream" in p.id])
def test_recorded_stream_collects_to_the_parse_of_its_completed_body(path: Path) -> None:
    record = load(path)
    streamed = collect(record["response_body"])
    parsed = DIALECT.parse_response(final_body(record), None, "m")
    assert _masked(streamed) == _masked(parsed)
    # The streamed encrypted content is exactly what output_item.done carried.
    done = [
        e["item"].get("encrypted_content")
        for e in sse_events(record["response_body"])
        if e["type"] == "response.output_item.done" and e["item"]["type"] == "reasoning"
    ]
    assert actual(streamed)["encrypted"] == done


@pytest.mark.parametrize("path", [p for p in SUCCESSES if p.values[0] is None or "_stream" in p.id])
def test_recorded_stream_cut_before_response_completed_is_a_stream_error(path: Path) -> None:
    record = load(path)
    decoder = SSEDecoder()
    parser = DIALECT.stream_parser(None, "m")
    for event in decoder.feed(record["response_body"]):
        if '"response.completed"' in event.data:
            break  # the connection drops here
        parser.feed(event)
    with pytest.raises(StreamError, match="ended before"):
        parser.close()


@pytest.mark.parametrize("path", FAILURES)
def test_recorded_error_maps_to_the_right_class_with_status_and_code(path: Path) -> None:
    record = load(path)
    status = record["status"]
    error = json.loads(record["response_body"])["error"]
    err = DIALECT.parse_error(status, record["response_body"].encode(), record["response_headers"])
    by_status: dict[int, type[ProviderError]] = {400: BadRequestError, 404: NotFoundError}
    assert type(err) is by_status[status]
    assert err.status == status
    assert err.code == (error.get("code") or error.get("type"))
    assert error["message"][:40] in str(err)


# --------------------------------------------------------------------------- requests


def _canonical_parts(content: Any) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    parts: list[Part] = []
    for part in content:
        kind = part["type"]
        if kind in ("input_text", "output_text"):
            parts.append(Text(part["text"]))
        elif kind == "input_image":
            url = part["image_url"]
            if url.startswith("data:"):
                media, _, data = url[5:].partition(";base64,")
                parts.append(Image(data=base64.b64decode(data), media_type=media,
                                   detail=part.get("detail")))
            else:
                parts.append(Image(url=url, detail=part.get("detail")))
        elif kind == "input_file" and part.get("file_data"):
            media, _, data = part["file_data"][5:].partition(";base64,")
            parts.append(File(data=base64.b64decode(data), media_type=media,
                              filename=part.get("filename")))
        elif kind == "input_file":
            parts.append(File(url=part.get("file_url"), file_id=part.get("file_id")))
        else:
            raise AssertionError(f"no canonical form for {kind}")
    return parts


def canonical_request(recorded: dict[str, Any]) -> Request | None:
    """The canonical Request a tollway user would write for the recorded body, or None
    when it used a feature tollway passes through only (hosted tools, tool search)."""
    messages: list[Message] = []
    if recorded.get("instructions"):
        messages.append(Message.system(recorded["instructions"]))
    assistant: list[Part] = []

    def flush() -> None:
        if assistant:
            messages.append(Message("assistant", list(assistant)))
            assistant.clear()

    for item in recorded["input"]:
        kind = item.get("type", "message")
        if kind == "message" and item["role"] in ("user", "system", "developer"):
            flush()
            role = "system" if item["role"] in ("system", "developer") else "user"
            messages.append(Message(role, _canonical_parts(item["content"])))
        elif kind == "message":
            meta = {"type": "message", "id": item["id"]}
            if item.get("phase"):
                meta["phase"] = item["phase"]
            for part in item["content"]:
                assistant.append(Text(part["text"], {NAME: {"item": meta}}))
        elif kind == "reasoning":
            assistant.append(Thinking(provider=NAME, provider_data={NAME: {"item": dict(item)}}))
        elif kind == "function_call":
            assistant.append(ToolCall.from_raw(item["call_id"], item["name"], item["arguments"],
                                               {NAME: {"id": item["id"]}}))
        elif kind == "function_call_output":
            flush()
            output = item["output"]
            content = output if isinstance(output, str) else _canonical_parts(
                [{**p, "type": "input_file"} if p["type"] == "input_file" else p for p in output]
            )
            messages.append(Message("tool", [ToolResult(item["call_id"], content)]))
        else:
            return None
    flush()
    tools = []
    for tool in recorded.get("tools") or []:
        if tool["type"] != "function" or tool.get("defer_loading"):
            return None
        tools.append(Tool(tool["name"], tool.get("description") or "", tool["parameters"],
                          tool.get("strict")))
    choice = recorded.get("tool_choice")
    fmt = (recorded.get("text") or {}).get("format")
    response_format = None
    if fmt and fmt["type"] == "json_schema":
        response_format = ResponseFormat(fmt["schema"], fmt["name"], fmt["strict"])
    elif fmt and fmt["type"] == "json_object":
        response_format = ResponseFormat(None, strict=False)
    reasoning = recorded.get("reasoning")
    extra: dict[str, Any] = {}
    for key in ("service_tier", "previous_response_id"):
        if key in recorded:
            extra[key] = recorded[key]
    if reasoning is not None:
        extra["reasoning"] = {"summary": reasoning.get("summary")}
    extra_include = [i for i in recorded.get("include") or [] if i != "reasoning.encrypted_content"]
    if extra_include:
        extra["include"] = extra_include
    return Request(
        messages,
        tools=tools,
        tool_choice=None if choice is None else (
            NamedTool(choice["name"]) if isinstance(choice, dict) else choice
        ),
        response_format=response_format,
        reasoning=Reasoning(effort=reasoning.get("effort")) if reasoning else None,
        temperature=recorded.get("temperature"),
        extra=extra,
    )


def normalize(recorded: dict[str, Any]) -> dict[str, Any]:
    """The recorded body in the spelling the dialect emits: no ``stream: false`` or empty
    ``instructions``, a null
    or empty description left out, system input messages as ``developer``, ``status`` on our
    own message items, an empty-summary ``summary: []`` kept."""
    out = json.loads(json.dumps(recorded))
    if out.get("stream") is False:
        del out["stream"]
    if out.get("instructions") == "":
        del out["instructions"]
    for tool in out.get("tools") or []:
        if not tool.get("description"):
            tool.pop("description", None)
    leading = []
    while out["input"] and out["input"][0].get("role") in ("system", "developer"):
        leading.append(out["input"].pop(0)["content"])
    if leading:
        out["instructions"] = "\n\n".join(leading)
    for item in out["input"]:
        if item.get("role") == "system":
            item["role"] = "developer"
        if item.get("type") == "message" and item.get("role") == "assistant":
            item["status"] = "completed"
    return out


REBUILDABLE = [
    p for p in INTERACTIONS
    if p.values[0] is None or canonical_request(load(p.values[0])["request"]) is not None
]


def test_most_recorded_requests_have_a_canonical_form() -> None:
    if INTERACTIONS[0].values[0] is None:
        pytest.skip("no corpus")
    assert len(REBUILDABLE) >= 16, [p.id for p in REBUILDABLE]


@pytest.mark.parametrize("path", REBUILDABLE)
def test_recorded_request_is_rebuilt_from_its_canonical_form(path: Path) -> None:
    recorded = load(path)["request"]
    request = canonical_request(recorded)
    assert request is not None
    # pydantic-ai leaves `store` to the server's default: so does this dialect instance.
    dialect = OpenAIResponsesDialect(store=None)
    rebuilt = dialect.build_request(request, recorded["model"], stream=bool(recorded.get("stream")))
    assert rebuilt.path == "/responses"
    assert rebuilt.json == normalize(recorded)
