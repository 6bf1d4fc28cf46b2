"""Replay the recorded OpenAI Responses traffic through the gateway's reverse direction.

Requests: every recorded request body a client could send to a stateless gateway (function
tools only, no ``previous_response_id``) is read by ``request_from_responses`` and built
again by the outbound Responses dialect: the input items, instructions, tools, tool choice,
format and reasoning effort that reach OpenAI must be the recorded ones. Responses: every
recorded answer, parsed by the dialect and written by ``response_to_responses`` (or, for
streams, through ``ResponsesEventEncoder``), gives a client the same output items: texts,
function calls with their call ids, message and reasoning ids, encrypted reasoning. Skips
cleanly when the corpus folder is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.replay.test_openai_responses_replay import (
    INTERACTIONS,
    SUCCESSES,
    collect,
    final_body,
    is_stream,
    load,
    normalize,
)
from tollway.core.dialects.openai_responses import DIALECT, OpenAIResponsesDialect
from tollway.core.dialects.responses_interchange.reading import request_from_responses
from tollway.core.dialects.responses_interchange.writing import (
    ResponsesEventEncoder,
    response_to_responses,
)
from tollway.core.sse import SSEDecoder
from tollway.core.types import StreamEnd

_INPUT_KINDS = {None, "message", "reasoning", "function_call", "function_call_output"}


def _servable(record: dict[str, Any]) -> bool:
    body = record["request"]
    if body.get("previous_response_id"):
        return False
    if any(t.get("type") != "function" or t.get("defer_loading") for t in body.get("tools") or ()):
        return False
    items = body["input"] if isinstance(body["input"], list) else []
    return all(item.get("type") in _INPUT_KINDS for item in items)


SERVABLE = [p for p in INTERACTIONS if p.values[0] is None or _servable(load(p.values[0]))]


def _answers() -> list[Any]:
    found = []
    for param in SUCCESSES:
        path = param.values[0]
        if path is None:
            return [param]
        output = final_body(load(path))["output"]
        if all(item["type"] in ("message", "function_call", "reasoning") for item in output):
            found.append(param)
    return found


ANSWERS = _answers()


def test_enough_recorded_traffic_is_servable() -> None:
    if INTERACTIONS[0].values[0] is None:
        pytest.skip("no corpus")
    assert len(SERVABLE) >= 10, [p.id for p in SERVABLE]
    assert len(ANSWERS) >= 8, [p.id for p in ANSWERS]


def _compared(body: dict[str, Any]) -> dict[str, Any]:
    reasoning = body.get("reasoning") or {}
    return {
        "input": body["input"],
        "instructions": body.get("instructions"),
        "tools": body.get("tools"),
        "tool_choice": body.get("tool_choice"),
        "format": (body.get("text") or {}).get("format"),
        "effort": reasoning.get("effort"),
        "temperature": body.get("temperature"),
    }


@pytest.mark.parametrize("path", SERVABLE)
def test_a_recorded_request_read_by_the_gateway_reaches_openai_unchanged(path: Path) -> None:
    recorded = load(path)["request"]
    model, request, stream = request_from_responses(recorded)
    assert model == recorded["model"]
    assert stream == bool(recorded.get("stream"))
    rebuilt = OpenAIResponsesDialect(store=None).build_request(request, model, stream=stream)
    assert _compared(rebuilt.json) == _compared(normalize(recorded))


def _items(output: list[dict[str, Any]], *, exact_reasoning: bool = True) -> list[tuple[Any, ...]]:
    """What a client reads off output items: kinds, ids, texts, calls, reasoning. OpenAI
    encrypts a streamed reasoning item afresh for ``response.completed``, so for streams
    only its presence is compared (``exact_reasoning=False``)."""
    out: list[tuple[Any, ...]] = []
    for item in output:
        if item["type"] == "message":
            texts = [(p["type"], p.get("text") or p.get("refusal")) for p in item["content"]]
            out.append(("message", item["id"], texts))
        elif item["type"] == "function_call":
            out.append(("function_call", item["call_id"], item["name"],
                        json.loads(item["arguments"] or "{}")))
        else:
            summary = [s["text"] for s in item.get("summary") or ()]
            encrypted = item.get("encrypted_content")
            out.append(("reasoning", item["id"], summary,
                        encrypted if exact_reasoning else bool(encrypted)))
    return out


@pytest.mark.parametrize("path", ANSWERS)
def test_a_recorded_answer_is_written_back_with_the_same_items(path: Path) -> None:
    record = load(path)
    body = final_body(record)
    if is_stream(record):
        response = collect(record["response_body"])
    else:
        response = DIALECT.parse_response(body, None, body["model"])
    written = response_to_responses(response, model=body["model"])
    exact = not is_stream(record)
    assert _items(written["output"], exact_reasoning=exact) == _items(body["output"], exact_reasoning=exact)
    assert written["status"] == body["status"]
    assert written["usage"]["input_tokens"] == body["usage"]["input_tokens"]
    assert written["usage"]["output_tokens"] == body["usage"]["output_tokens"]
    assert (written["usage"]["input_tokens_details"]["cached_tokens"]
            == body["usage"]["input_tokens_details"]["cached_tokens"])


@pytest.mark.parametrize("path", [p for p in ANSWERS if p.values[0] is None
                                  or is_stream(load(p.values[0]))])
def test_a_recorded_stream_re_encoded_is_a_consistent_event_stream(path: Path) -> None:
    record = load(path)
    body = final_body(record)
    decoder = SSEDecoder()
    parser = DIALECT.stream_parser(None, "m")
    encoder = ResponsesEventEncoder(model=body["model"])
    events: list[dict[str, Any]] = []
    canonical = [e for sse in [*decoder.feed(record["response_body"]), *decoder.flush()]
                 for e in parser.feed(sse)]
    canonical += list(parser.close())
    for event in canonical:
        events.extend(encoder.feed(event))
    events.extend(encoder.feed(StreamEnd(collect(record["response_body"]))))

    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"
    added = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    assert added == list(range(len(added)))
    texts: dict[int, str] = {}
    for e in events:
        if e["type"] == "response.output_text.delta":
            assert e["output_index"] in added
            texts[e["output_index"]] = texts.get(e["output_index"], "") + e["delta"]
    final = events[-1]["response"]["output"]
    for index, text in texts.items():
        assert final[index]["content"][0]["text"] == text
    recorded_text = "".join(p.get("text") or "" for item in body["output"]
                            if item["type"] == "message" for p in item["content"])
    assert "".join(texts.values()) == recorded_text
    calls = [(i["name"], json.loads(i["arguments"] or "{}")) for i in final
             if i["type"] == "function_call"]
    assert calls == [(i["name"], json.loads(i["arguments"] or "{}")) for i in body["output"]
                     if i["type"] == "function_call"]
