"""Recorded Anthropic Messages API traffic (../shared/corpus/A) replayed through the dialect.

Every expected value is derived here from the raw recorded bodies with small, plain code
that does not use the dialect: the text, thinking, tool calls, finish reason and usage a
response must parse to; the content blocks a stream must collect to; the request body a
canonical Request must build to; and the next-turn message a parsed response must become.
``messages.count_tokens`` interactions are skipped explicitly: they are not chat calls.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import corpus_dir
from tollway.core.dialects.anthropic import DIALECT
from tollway.core.errors import BadRequestError, NotFoundError, ProviderError
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

CORPUS = corpus_dir()


def _anthropic_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    files = []
    for path in sorted(CORPUS.glob("*.json")):
        if json.loads(path.read_text(encoding="utf-8")).get("provider") == "anthropic":
            files.append(path)
    return files


FILES = _anthropic_files()
ABSENT = pytest.param(None, marks=pytest.mark.skip(reason=f"no recorded corpus at {CORPUS}"))
PARAMS = [pytest.param(p, id=p.stem) for p in FILES] or [ABSENT]


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data["endpoint"] == "messages.count_tokens":
        pytest.skip("messages.count_tokens counts tokens; it is not a chat call")
    assert data["endpoint"] == "messages"
    return data


def is_stream(data: dict[str, Any]) -> bool:
    return data["body_fidelity"].startswith("verbatim")


# --------------------------------------------------------------------------- expectations


FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
ERROR_CLASSES = {"not_found_error": NotFoundError, "invalid_request_error": BadRequestError}


def sse_payloads(text: str) -> list[dict[str, Any]]:
    """The JSON of every ``data:`` line of a recorded stream."""
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def blocks_from_stream(payloads: list[dict[str, Any]]) -> tuple[list[dict], dict, str | None]:
    """``(content blocks, usage, stop_reason)`` rebuilt from stream events the plain way."""
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = defaultdict(str)
    usage: dict[str, Any] = {}
    stop_reason = None
    for event in payloads:
        kind = event["type"]
        if kind == "message_start":
            usage = dict(event["message"]["usage"])
        elif kind == "content_block_start":
            blocks[event["index"]] = json.loads(json.dumps(event["content_block"]))
        elif kind == "content_block_delta":
            block, delta = blocks[event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial[event["index"]] += delta["partial_json"]
            elif delta["type"] == "citations_delta":
                block.setdefault("citations", []).append(delta["citation"])
            elif delta["type"] == "compaction_delta":
                block["content"] = (block.get("content") or "") + delta["content"]
        elif kind == "content_block_stop" and partial.get(event["index"]):
            blocks[event["index"]]["input"] = json.loads(partial[event["index"]])
        elif kind == "message_delta":
            usage.update({k: v for k, v in event["usage"].items() if v is not None})
            stop_reason = event["delta"]["stop_reason"]
    return [blocks[i] for i in sorted(blocks)], usage, stop_reason


def expected_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """DESIGN.md's meaning: input = uncached + cache read + cache write, compaction
    iterations (billed, but left out of Anthropic's top-level counts) included."""
    rows = [usage] + [i for i in usage.get("iterations", []) if i.get("type") == "compaction"]
    read = sum(r.get("cache_read_input_tokens") or 0 for r in rows)
    write = sum(r.get("cache_creation_input_tokens") or 0 for r in rows)
    write_1h = sum(
        (r.get("cache_creation") or {}).get("ephemeral_1h_input_tokens", 0) for r in rows
    )
    searches = (usage.get("server_tool_use") or {}).get("web_search_requests", 0)
    return {
        "input_tokens": sum(r.get("input_tokens") or 0 for r in rows) + read + write,
        "output_tokens": sum(r.get("output_tokens") or 0 for r in rows),
        "cache_read_tokens": read,
        "cache_write_tokens": write,
        "cache_write_1h_tokens": write_1h,
        "reasoning_tokens": (usage.get("output_tokens_details") or {}).get("thinking_tokens", 0),
        "units": {"web_search": searches} if searches else {},
    }


def expected_from_blocks(blocks: list[dict], usage: dict, stop_reason: str | None) -> dict:
    return {
        "text": "".join(b["text"] for b in blocks if b["type"] == "text"),
        "thinking": "".join(b["thinking"] for b in blocks if b["type"] == "thinking"),
        "signatures": [b["signature"] for b in blocks if b["type"] == "thinking"],
        "redacted": [b["data"] for b in blocks if b["type"] == "redacted_thinking"],
        "tool_calls": [(b["name"], b.get("input", {})) for b in blocks if b["type"] == "tool_use"],
        "finish": FINISH[stop_reason or "end_turn"],
        "usage": expected_usage(usage),
    }


def actual_summary(response: Response) -> dict:
    thinking = [p for p in response.parts if isinstance(p, Thinking)]
    u = response.usage
    return {
        "text": response.text,
        "thinking": response.thinking,
        "signatures": [p.signature for p in thinking if p.redacted is None],
        "redacted": [p.redacted for p in thinking if p.redacted is not None],
        "tool_calls": [(c.name, c.arguments) for c in response.tool_calls],
        "finish": response.finish_reason,
        "usage": {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_tokens": u.cache_read_tokens,
            "cache_write_tokens": u.cache_write_tokens,
            "cache_write_1h_tokens": u.cache_write_1h_tokens,
            "reasoning_tokens": u.reasoning_tokens,
            "units": u.units,
        },
    }


def recorded_blocks(data: dict[str, Any]) -> tuple[list[dict], dict, str | None]:
    if is_stream(data):
        return blocks_from_stream(sse_payloads(data["response_body"]))
    body = json.loads(data["response_body"])
    return body["content"], body["usage"], body["stop_reason"]


def parse_recorded(data: dict[str, Any]) -> Response:
    """The dialect's view of a recorded 200 response (a stream is collected)."""
    model = data["request"]["model"]
    if not is_stream(data):
        return DIALECT.parse_response(json.loads(data["response_body"]), None, model)
    parser = DIALECT.stream_parser(None, model)
    acc = StreamAccumulator()
    decoder = SSEDecoder()
    for event in decoder.feed(data["response_body"].encode("utf-8")) + decoder.flush():
        for item in parser.feed(event):
            acc.add(item)
    for item in parser.close():
        acc.add(item)
    return acc.response(provider="anthropic", model=model)


# --------------------------------------------------------------------------- recorded request -> canonical


def _extras(block: dict[str, Any], known: set[str]) -> dict[str, Any] | None:
    rest = {k: v for k, v in block.items() if k not in known}
    return {"anthropic": rest} if rest else None


def part_from_block(block: dict[str, Any]) -> Part:
    kind = block["type"]
    if kind == "text":
        return Text(block["text"], _extras(block, {"type", "text"}))
    if kind in ("image", "document"):
        source, extra = block["source"], _extras(block, {"type", "source"})
        cls = Image if kind == "image" else File
        if source["type"] == "url":
            return cls(url=source["url"], provider_data=extra)
        return cls(
            data=base64.b64decode(source["data"]),
            media_type=source["media_type"],
            provider_data=extra,
        )
    if kind == "tool_use":
        known = {"type", "id", "name", "input"}
        return ToolCall.from_arguments(
            block["id"], block["name"], block["input"], _extras(block, known)
        )
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, list):
            content = [part_from_block(b) for b in content]
        return ToolResult(block["tool_use_id"], content, bool(block.get("is_error")))
    if kind == "thinking":
        return Thinking(block["thinking"], signature=block["signature"], provider="anthropic")
    if kind == "redacted_thinking":
        return Thinking("", redacted=block["data"], provider="anthropic")
    return Text("", {"anthropic": {"block": block}})


def tool_from_spec(spec: dict[str, Any]) -> Tool:
    if spec.get("type", "custom") != "custom":
        return Tool(
            spec["name"],
            provider_data={"anthropic": {k: v for k, v in spec.items() if k != "name"}},
        )
    known = {"name", "description", "input_schema", "strict"}
    return Tool(
        spec["name"],
        spec.get("description", ""),
        spec["input_schema"],
        spec.get("strict"),
        _extras(spec, known),
    )


def request_from_recorded(body: dict[str, Any]) -> Request:
    messages: list[Message] = []
    system = body.get("system")
    if isinstance(system, str):
        messages.append(Message.system(system))
    elif system:
        messages.append(Message("system", [part_from_block(b) for b in system]))
    for turn in body["messages"]:
        content = turn["content"]
        parts = (
            [Text(content)] if isinstance(content, str) else [part_from_block(b) for b in content]
        )
        messages.append(Message(turn["role"], parts))
    request = Request(
        messages,
        tools=[tool_from_spec(t) for t in body.get("tools", [])],
        max_tokens=body["max_tokens"],
    )
    handled = {
        "model",
        "messages",
        "system",
        "tools",
        "max_tokens",
        "stream",
        "tool_choice",
        "thinking",
        "output_config",
        "temperature",
        "top_p",
        "stop_sequences",
    }
    choice = body.get("tool_choice")
    if choice:
        request.tool_choice = {"auto": "auto", "any": "required", "none": "none"}.get(
            choice["type"]
        ) or NamedTool(choice["name"])
        if choice.get("disable_parallel_tool_use"):
            request.parallel_tool_calls = False
    thinking = body.get("thinking")
    if thinking and thinking["type"] == "enabled":
        request.reasoning = Reasoning(budget_tokens=thinking["budget_tokens"])
    elif thinking:
        request.extra["thinking"] = thinking
    output_config = dict(body.get("output_config") or {})
    if "format" in output_config:
        request.response_format = ResponseFormat(schema=output_config.pop("format")["schema"])
    if output_config:
        request.extra["output_config"] = output_config
    request.temperature = body.get("temperature")
    request.top_p = body.get("top_p")
    request.stop = body.get("stop_sequences")
    request.extra.update({k: v for k, v in body.items() if k not in handled})
    return request


def normalised_recorded(body: dict[str, Any]) -> dict[str, Any]:
    """The recorded body with the differences that carry no meaning removed: an empty
    tool description, ``is_error`` left out (false), ``stream: false``."""
    out = json.loads(json.dumps(body))
    if not out.get("stream"):
        out.pop("stream", None)
    for tool in out.get("tools", []):
        if tool.get("description") == "":
            del tool["description"]
    for turn in out["messages"]:
        for block in turn["content"] if isinstance(turn["content"], list) else ():
            if block.get("type") == "tool_result":
                block.setdefault("is_error", False)
    return out


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("path", PARAMS)
def test_recorded_response_parses_to_what_the_raw_body_says(path: Path) -> None:
    data = load(path)
    if data["status"] >= 400:
        pytest.skip("an error response; see test_recorded_error_maps_to_its_typed_error")
    blocks, usage, stop_reason = recorded_blocks(data)
    expected = expected_from_blocks(blocks, usage, stop_reason)
    assert actual_summary(parse_recorded(data)) == expected


@pytest.mark.parametrize("path", PARAMS)
def test_recorded_error_maps_to_its_typed_error(path: Path) -> None:
    data = load(path)
    if data["status"] < 400:
        pytest.skip("not an error response")
    raw = json.loads(data["response_body"])["error"]
    error = DIALECT.parse_error(data["status"], data["response_body"], data["response_headers"])
    assert isinstance(error, ProviderError)
    assert type(error) is ERROR_CLASSES[raw["type"]]
    assert error.status == data["status"] and error.code == raw["type"]
    assert raw["message"] in error.message


@pytest.mark.parametrize("path", PARAMS)
def test_recorded_response_is_sent_back_verbatim_on_the_next_turn(path: Path) -> None:
    """Thinking signatures, redacted thinking, server-tool blocks, compaction and
    citations all survive parse -> next request unchanged (tool_use loses only the
    informational ``caller`` field)."""
    data = load(path)
    if data["status"] >= 400:
        pytest.skip("an error response")
    blocks, _, _ = recorded_blocks(data)
    expected = []
    for block in blocks:
        block = dict(block)
        if block["type"] == "tool_use":
            block.pop("caller", None)
        if block["type"] == "text" and not block.get("citations"):
            block.pop("citations", None)
        if block["type"] == "text" and not block["text"] and "citations" not in block:
            continue
        expected.append(block)
    response = parse_recorded(data)
    request = Request([Message.user("go on"), response.to_message(), Message.user("thanks")])
    built = DIALECT.build_request(request, data["request"]["model"], stream=False).json
    assert built["messages"][1] == {"role": "assistant", "content": expected}


@pytest.mark.parametrize("path", PARAMS)
def test_recorded_request_is_rebuilt_from_a_canonical_request(path: Path) -> None:
    data = load(path)
    body = data["request"]
    request = request_from_recorded(body)
    built = DIALECT.build_request(request, body["model"], stream=bool(body.get("stream"))).json
    assert built == normalised_recorded(body)


def _follow_ups() -> list[Any]:
    """Pairs of recorded interactions where the second continues the first's conversation."""
    by_source: dict[tuple[str, int], Path] = {}
    for path in FILES:
        data = json.loads(path.read_text(encoding="utf-8"))
        source, _, index = data["source"].rpartition("#interaction[")
        by_source[(source, int(index.rstrip("]")))] = path
    pairs = []
    for (source, index), path in sorted(by_source.items()):
        follow = by_source.get((source, index + 1))
        if follow is not None:
            pairs.append(pytest.param(path, follow, id=f"{path.stem[:3]}->{follow.stem[:3]}"))
    return pairs or [pytest.param(None, None, marks=pytest.mark.skip(reason="no follow-up pairs"))]


@pytest.mark.parametrize(("first", "second"), _follow_ups())
def test_recorded_follow_up_request_is_rebuilt_from_the_parsed_first_response(
    first: Path, second: Path
) -> None:
    before, after = load(first), load(second)
    earlier = before["request"]["messages"]
    later = after["request"]["messages"]
    assert later[: len(earlier)] == earlier
    assert later[len(earlier)]["role"] == "assistant"
    history = request_from_recorded(after["request"])
    turns = [m for m in history.messages if m.role != "system"]
    history.messages = [m for m in history.messages if m.role == "system"] + (
        turns[: len(earlier)] + [parse_recorded(before).to_message()] + turns[len(earlier) + 1 :]
    )
    built = DIALECT.build_request(history, after["request"]["model"], stream=False).json
    assert built["messages"] == normalised_recorded(after["request"])["messages"]


def test_the_corpus_holds_the_interactions_this_module_is_meant_to_cover() -> None:
    if not FILES:
        pytest.skip(f"no recorded corpus at {CORPUS}")
    features = defaultdict(int)
    for path in FILES:
        data = json.loads(path.read_text(encoding="utf-8"))
        for feature in data["features"]:
            features[feature] += 1
    for needed in (
        "stream",
        "sse_ping",
        "tool_call",
        "thinking_signature",
        "redacted_thinking",
        "cached_tokens",
        "cache_creation_tokens",
        "server_tool",
        "error_400",
        "error_404",
    ):
        assert features[needed] > 0, needed
