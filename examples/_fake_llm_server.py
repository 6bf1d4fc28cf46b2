"""A loopback stand-in for the OpenAI and Anthropic APIs, so the examples run offline.

``python examples/<example>.py --fake`` starts one of these on 127.0.0.1 and points the
example's models at it: the example's code, tollway, the framework and the ledger all run
for real; only the model's words come from ``respond(turn)``, a function the example
supplies. Speaks OpenAI chat completions (``/chat/completions``, streamed or not) and
Anthropic Messages (``/messages``, not streamed), with token counts of about four
characters a token, so costs in the ledger look like real ones.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Turn:
    """What the model was asked, reduced to what a scripted answer needs."""

    dialect: str
    model: str
    tools: list[str]
    text: str
    """Every message's text, in order."""
    last: str
    """The last message's text."""
    tool_result: str | None = None
    """The result the conversation ends with, when the last message is a tool result."""


@dataclass
class Answer:
    text: str = ""
    tool: tuple[str, dict[str, Any]] | None = None


@dataclass
class FakeLLMServer:
    respond: Callable[[Turn], Answer]
    requests: list[Turn] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_id(self) -> int:
        return next(self._ids)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                inner = part.get("text") or part.get("content") or ""
                out.append(_text_of(inner))
        return "\n".join(out)
    return ""


def _turn(dialect: str, body: dict[str, Any]) -> Turn:
    messages = body.get("messages") or []
    tools = [t.get("function", t).get("name", "") for t in body.get("tools") or []]
    texts = [_text_of(body.get("system"))] if dialect == "anthropic" else []
    texts += [_text_of(m.get("content")) for m in messages]
    result = None
    last = messages[-1] if messages else {}
    if dialect == "openai" and last.get("role") == "tool":
        result = _text_of(last.get("content"))
    if dialect == "anthropic" and isinstance(last.get("content"), list):
        results = [p for p in last["content"] if p.get("type") == "tool_result"]
        if results:
            result = _text_of(results[-1].get("content"))
    last_text = _text_of(last.get("content"))
    return Turn(dialect, str(body.get("model")), tools, "\n".join(texts), last_text, result)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _openai(server: FakeLLMServer, body: dict[str, Any], answer: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
    finish = "stop"
    if answer.tool is not None:
        name, args = answer.tool
        message["tool_calls"] = [{
            "id": f"call_{server.next_id()}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }]
        finish = "tool_calls"
    prompt, completion = _tokens(json.dumps(body)), _tokens(json.dumps(message))
    return {
        "id": f"chatcmpl-{server.next_id()}", "object": "chat.completion", "created": 0,
        "model": body.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion},
    }


def _openai_chunks(completion: dict[str, Any]) -> list[dict[str, Any]]:
    """The same answer as chat.completion.chunk events (text word by word)."""
    base = {k: completion[k] for k in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"
    choice = completion["choices"][0]
    message = choice["message"]
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    for word in (message["content"] or "").split(" "):
        deltas.append({"content": word if len(deltas) == 1 else " " + word})
    for index, call in enumerate(message.get("tool_calls") or []):
        deltas.append({"tool_calls": [{"index": index, **call}]})
    chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]}
              for d in deltas]
    chunks.append({**base, "choices": [{"index": 0, "delta": {},
                                        "finish_reason": choice["finish_reason"]}]})
    chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


def _anthropic(server: FakeLLMServer, body: dict[str, Any], answer: Answer) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if answer.text:
        content.append({"type": "text", "text": answer.text})
    stop = "end_turn"
    if answer.tool is not None:
        name, args = answer.tool
        content.append({"type": "tool_use", "id": f"toolu_{server.next_id()}", "name": name,
                        "input": args})
        stop = "tool_use"
    return {
        "id": f"msg_{server.next_id()}", "type": "message", "role": "assistant",
        "model": body.get("model"), "content": content, "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": _tokens(json.dumps(body)),
                  "output_tokens": _tokens(json.dumps(content))},
    }


def _handler(server: FakeLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
            dialect = "openai" if self.path.endswith("/chat/completions") else "anthropic"
            if dialect == "anthropic" and not self.path.endswith("/messages"):
                return self._send(404, {"error": {"message": f"no such path {self.path}"}})
            turn = _turn(dialect, body)
            server.requests.append(turn)
            answer = server.respond(turn)
            if dialect == "anthropic":
                if body.get("stream"):
                    return self._send(400, {"type": "error", "error": {
                        "type": "invalid_request_error",
                        "message": "this fake does not stream Anthropic replies"}})
                return self._send(200, _anthropic(server, body, answer))
            completion = _openai(server, body, answer)
            if body.get("stream"):
                return self._stream(_openai_chunks(completion))
            return self._send(200, completion)

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, chunks: list[dict[str, Any]]) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for payload in [*(json.dumps(c) for c in chunks), "[DONE]"]:
                event = f"data: {payload}\n\n".encode()
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler
