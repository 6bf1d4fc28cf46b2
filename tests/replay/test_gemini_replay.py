"""Replay every recorded Gemini API / Vertex AI generateContent interaction.

Expected values are read straight from the raw recorded body with small, independent
code (no tollway parsing): text, thinking text, tool calls (names + arguments), finish
reason and the four usage numbers (streams: running totals, the last one wins), and the
thoughtSignatures. They are compared with what the dialect makes of the same bytes.
Errors must come out as the right class. Each recorded request is also turned back into
a canonical Request and rebuilt: the contents, function declarations and key config must
come out the same (after merging consecutive same-role turns, which the dialect does).

Embedding (``batchEmbedContents``) and ``countTokens`` recordings are listed and skipped
explicitly: they are not generateContent and not this dialect's job. The module skips
cleanly when the corpus folder is absent.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import corpus_dir
from tollway.core import errors
from tollway.core.dialects.gemini import DIALECT
from tollway.core.sse import SSEDecoder
from tollway.core.types import (
    File,
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

GENERATE = {"generateContent", "streamGenerateContent"}
NOT_GENERATE = {"batchEmbedContents", "embedContent", "countTokens"}


def _interactions() -> list[Any]:
    folder = corpus_dir()
    if not folder.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no corpus at {folder}"))]
    found = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("provider") not in ("google-gemini", "google-vertex"):
            continue
        marks = []
        if record.get("endpoint") in NOT_GENERATE:
            marks.append(pytest.mark.skip(
                reason=f"{record['endpoint']} is not generateContent (embeddings / token "
                       "counting are outside the chat dialect)"))
        found.append(pytest.param(path, id=path.stem, marks=marks))
    return found


INTERACTIONS = _interactions()
"""Every Google recording; embedding / countTokens ones carry an explicit skip."""


def _subset(ok: bool) -> list[Any]:
    out = []
    for param in INTERACTIONS:
        path = param.values[0]
        if path is None:
            return [param]
        record = json.loads(path.read_text())
        if record["endpoint"] in GENERATE and (record["status"] == 200) == ok:
            out.append(param)
    return out


SUCCESSES = _subset(True)
FAILURES = _subset(False)


def _load(path: Path | None) -> dict[str, Any]:
    if path is None:  # pragma: no cover - the param is skipped
        pytest.skip("no corpus")
    return json.loads(path.read_text())


def _model(record: dict[str, Any]) -> str:
    return record["url"].split("/models/", 1)[1].split(":", 1)[0]


def _chunks(raw: str) -> list[dict[str, Any]]:
    lines = raw.replace("\r\n", "\n").split("\n")
    return [json.loads(line[len("data: "):]) for line in lines if line.startswith("data: ")]


# --------------------------------------------------------------------------- expectations


def _expected(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """What the answer is, derived with plain dict code from the raw body (a non-streamed
    body is a one-chunk stream)."""
    text, thinking, calls, signatures = "", "", [], []
    finish_raw, usage = None, {}
    for body in bodies:
        candidates = body.get("candidates") or [{}]
        candidate = candidates[0]
        for part in (candidate.get("content") or {}).get("parts") or []:
            if "thoughtSignature" in part:
                signatures.append(part["thoughtSignature"])
            if "functionCall" in part:
                call = part["functionCall"]
                calls.append((call["name"], call.get("args") or {}))
            elif "text" in part and part.get("thought"):
                thinking += part["text"]
            elif "text" in part:
                text += part["text"]
        if candidate.get("finishReason"):
            finish_raw = candidate["finishReason"]
        if "usageMetadata" in body:
            usage = body["usageMetadata"]  # running totals: the last one wins
    finish = {"STOP": "tool_calls" if calls else "stop", "MAX_TOKENS": "length"}[finish_raw]
    thoughts = usage.get("thoughtsTokenCount", 0)
    return {
        "text": text,
        "thinking": thinking,
        "calls": calls,
        "signatures": signatures,
        "finish": finish,
        "input": usage.get("promptTokenCount", 0) + usage.get("toolUsePromptTokenCount", 0),
        "output": usage.get("candidatesTokenCount", 0) + thoughts,
        "cache_read": usage.get("cachedContentTokenCount", 0),
        "reasoning": thoughts,
    }


def _signatures_of(response: Response) -> list[str]:
    out = []
    for part in response.parts:
        mine = (part.provider_data or {}).get("gemini", {})
        if "thoughtSignature" in mine:
            out.append(mine["thoughtSignature"])
        elif "part" in mine and "thoughtSignature" in mine["part"]:
            out.append(mine["part"]["thoughtSignature"])
    return out


def _assert_matches(response: Response, want: dict[str, Any], record: dict[str, Any]) -> None:
    assert response.text == want["text"]
    assert response.thinking == want["thinking"]
    assert [(c.name, c.arguments) for c in response.tool_calls] == want["calls"]
    assert response.finish_reason == want["finish"]
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
            usage.reasoning_tokens) == (want["input"], want["output"], want["cache_read"],
                                        want["reasoning"])
    assert _signatures_of(response) == want["signatures"]
    assert all(c.id for c in response.tool_calls)
    assert response.model == _model(record)


def _collect(raw: str, model: str) -> Response:
    parser = DIALECT.stream_parser(None, model)
    decoder = SSEDecoder()
    acc = StreamAccumulator()
    data = raw.encode()
    for start in range(0, len(data), 97):  # arbitrary cuts, CRLFs split across reads
        for event in decoder.feed(data[start:start + 97]):
            for out in parser.feed(event):
                acc.add(out)
    for event in decoder.flush():
        for out in parser.feed(event):
            acc.add(out)
    for out in parser.close():
        acc.add(out)
    return acc.response(provider="gemini", model=model)


# --------------------------------------------------------------------------- responses


@pytest.mark.parametrize("path", SUCCESSES)
def test_recorded_answer_parses_to_what_the_raw_body_says(path: Path | None) -> None:
    record = _load(path)
    model = _model(record)
    if record["endpoint"] == "streamGenerateContent":
        chunks = _chunks(record["response_body"])
        response = _collect(record["response_body"], model)
        _assert_matches(response, _expected(chunks), record)
        assert response.id == chunks[0]["responseId"]
    else:
        body = json.loads(record["response_body"])
        response = DIALECT.parse_response(body, None, model)
        _assert_matches(response, _expected([body]), record)
        assert response.id == body["responseId"]


@pytest.mark.parametrize("path", FAILURES)
def test_recorded_error_maps_to_its_typed_error(path: Path | None) -> None:
    record = _load(path)
    error = DIALECT.parse_error(record["status"], record["response_body"],
                                record["response_headers"])
    expected = {400: errors.BadRequestError, 404: errors.NotFoundError}[record["status"]]
    assert type(error) is expected
    assert error.status == record["status"]
    assert error.message == json.loads(record["response_body"])["error"]["message"]


# --------------------------------------------------------------------------- requests

_CAMEL = {
    "function_call": "functionCall", "function_response": "functionResponse",
    "thought_signature": "thoughtSignature", "file_data": "fileData", "file_uri": "fileUri",
    "mime_type": "mimeType", "inline_data": "inlineData",
}


def _wire(part: dict[str, Any]) -> dict[str, Any]:
    """A recorded part with the SDK's snake_case structural keys in REST camelCase (the
    API accepts both; tollway writes camelCase). Payload keys are left alone."""
    out = {}
    for key, value in part.items():
        key = _CAMEL.get(key, key)
        if key in ("fileData", "inlineData") and isinstance(value, dict):
            value = {_CAMEL.get(k, k): v for k, v in value.items()}
        if key == "functionResponse" and "parts" in value:
            value = {**value, "parts": [_wire(p) for p in value["parts"]]}
        out[key] = value
    return out


def _json_schema(schema: Any) -> Any:
    """Gemini's upper-case legacy ``parameters`` back to lower-case JSON schema types."""
    if isinstance(schema, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else _json_schema(v))
                for k, v in schema.items()}
    if isinstance(schema, list):
        return [_json_schema(v) for v in schema]
    return schema


def _media(part: dict[str, Any]) -> File:
    if "inlineData" in part:
        inline = part["inlineData"]
        data = inline["data"]
        raw = base64.urlsafe_b64decode(data) if "-" in data or "_" in data else base64.b64decode(data)
        return File(data=raw, media_type=inline["mimeType"])
    return File(url=part["fileData"]["fileUri"], media_type=part["fileData"].get("mimeType"))


def _signed(part: dict[str, Any]) -> dict[str, Any] | None:
    sig = part.get("thoughtSignature")
    return {"gemini": {"thoughtSignature": sig}} if sig else None


def _canonical_part(part: dict[str, Any], index: int) -> Part:
    if "functionCall" in part:
        call = part["functionCall"]
        call_id = call.get("id") or f"gemini-call-recorded-{index}"
        return ToolCall.from_arguments(call_id, call["name"], call.get("args") or {},
                                       _signed(part))
    if "functionResponse" in part:
        response = part["functionResponse"]
        payload = response.get("response") or {}
        media: list[Part] = [_media(p) for p in response.get("parts", [])]
        if set(payload) == {"error"}:
            return ToolResult(response.get("id", ""), payload["error"], True, response["name"])
        content: str | list[Part] = json.dumps(payload)
        if media:
            content = [Text(content), *media] if payload else media
        return ToolResult(response.get("id", ""), content, False, response["name"])
    if "text" in part and part.get("thought"):
        return Thinking(part["text"], provider="gemini", provider_data=_signed(part))
    if "text" in part:
        return Text(part["text"], _signed(part))
    return _media(part)


def _canonical_request(recorded: dict[str, Any]) -> Request:
    messages = []
    system = recorded.get("systemInstruction")
    if system:
        messages.append(Message("system", [Text(p["text"]) for p in system["parts"]]))
    for content in recorded["contents"]:
        role = "assistant" if content["role"] == "model" else "user"
        parts = [_canonical_part(_wire(p), i) for i, p in enumerate(content["parts"])]
        messages.append(Message(role, parts))
    tools = []
    for group in recorded.get("tools", []):
        for fn in group.get("functionDeclarations", []):
            schema = (fn.get("parameters_json_schema") or fn.get("parametersJsonSchema")
                      or _json_schema(fn.get("parameters")) or {})
            tools.append(Tool(fn["name"], fn.get("description", ""), schema))
    request = Request(messages=messages, tools=tools)
    calling = (recorded.get("toolConfig") or {}).get("functionCallingConfig")
    if calling:
        names = calling.get("allowedFunctionNames") or []
        if calling["mode"] == "ANY" and len(names) == 1:
            request.tool_choice = NamedTool(names[0])
        else:
            request.tool_choice = {"ANY": "required", "AUTO": "auto", "NONE": "none"}[
                calling["mode"]]
    config = recorded.get("generationConfig") or {}
    request.max_tokens = config.get("maxOutputTokens")
    thinking = config.get("thinkingConfig")
    if thinking is not None:
        budget = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
        include = thinking.get("includeThoughts", thinking.get("include_thoughts", False))
        request.reasoning = Reasoning(budget_tokens=budget, include_thoughts=bool(include))
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if config.get("responseMimeType") == "application/json":
        request.response_format = ResponseFormat(schema=schema)
    if "cachedContent" in recorded:
        request.extra = {"cachedContent": recorded["cachedContent"]}
    return request


def _merged(contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for content in contents:
        parts = [_wire(p) for p in content["parts"]]
        if out and out[-1]["role"] == content["role"]:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": content["role"], "parts": parts})
    return out


def _shape(part: dict[str, Any]) -> Any:
    """A part reduced to what must survive the rebuild (bytes compared decoded)."""
    sig = part.get("thoughtSignature")
    if "functionCall" in part:
        call = part["functionCall"]
        return ("call", call["name"], call.get("args") or {}, call.get("id"), sig)
    if "functionResponse" in part:
        response = part["functionResponse"]
        nested = [_shape(p) for p in response.get("parts", [])]
        return ("response", response["name"], response.get("response"), response.get("id"),
                nested)
    if "text" in part:
        return ("text", part["text"], bool(part.get("thought")), sig)
    media = _media(part)
    return ("media", media.data, media.url, media.media_type)


@pytest.mark.parametrize("path", INTERACTIONS)
def test_recorded_request_is_rebuilt_from_its_canonical_form(path: Path | None) -> None:
    record = _load(path)
    recorded = record["request"]
    model = _model(record)
    request = _canonical_request(recorded)
    http = DIALECT.build_request(request, model, stream=record["endpoint"] == "streamGenerateContent")
    assert http.path == "/models/" + record["url"].split("/models/", 1)[1]
    body = http.json

    want = [(c["role"], [_shape(p) for p in c["parts"]]) for c in _merged(recorded["contents"])]
    got = [(c["role"], [_shape(p) for p in c["parts"]]) for c in body["contents"]]
    assert got == want

    if "systemInstruction" in recorded:
        assert body["systemInstruction"]["parts"] == recorded["systemInstruction"]["parts"]
    recorded_fns = [fn for group in recorded.get("tools", [])
                    for fn in group.get("functionDeclarations", [])]
    built_fns = [fn for group in body.get("tools", []) for fn in group["functionDeclarations"]]
    assert [(f["name"], f.get("description", "")) for f in built_fns] == [
        (f["name"], f.get("description", "")) for f in recorded_fns]
    for built, tool in zip(built_fns, request.tools, strict=True):
        props = tool.parameters.get("properties") or {}
        if props:
            assert set(built["parameters"]["properties"]) == set(props)
            assert built["parameters"].get("required", []) == tool.parameters.get("required", [])
        else:
            assert "parameters" not in built

    calling = (recorded.get("toolConfig") or {}).get("functionCallingConfig")
    if calling:
        assert body["toolConfig"]["functionCallingConfig"]["mode"] == calling["mode"]
    config = recorded.get("generationConfig") or {}
    built_config = body.get("generationConfig", {})
    assert built_config.get("maxOutputTokens") == config.get("maxOutputTokens")
    if config.get("responseMimeType"):
        assert built_config["responseMimeType"] == config["responseMimeType"]
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        assert list(built_config["responseSchema"]["properties"]) == list(schema["properties"])
    thinking = config.get("thinkingConfig")
    if thinking is not None:
        budget = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
        assert built_config["thinkingConfig"].get("thinkingBudget") == budget
    assert body.get("cachedContent") == recorded.get("cachedContent")


def test_corpus_has_gemini_interactions_of_every_kind() -> None:
    """Guard against a silently empty parametrization (a renamed corpus field)."""
    if not corpus_dir().is_dir():
        pytest.skip("no corpus")
    records = [json.loads(p.values[0].read_text()) for p in SUCCESSES + FAILURES]
    kinds = {(r["provider"], r["endpoint"], r["status"]) for r in records}
    assert ("google-gemini", "generateContent", 200) in kinds
    assert ("google-gemini", "streamGenerateContent", 200) in kinds
    assert ("google-vertex", "generateContent", 400) in kinds
    assert ("google-gemini", "generateContent", 404) in kinds
