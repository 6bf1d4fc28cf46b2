"""OpenAI chat-completions JSON in, OpenAI JSON (or SSE chunks) out, over a local model.

The ``local`` provider uses the ``openai_chat`` dialect unchanged: the dialect builds the
same body it would send to OpenAI, this module answers it the way OpenAI would, and the
dialect parses the answer. So a local model gets tool calls, structured output, stop
sequences, streaming and usage through exactly the code paths a hosted one does.

Three steps, each usable on its own:

- :func:`plan` checks the body and turns it into a :class:`Plan` (prompt tokens, sampler,
  grammar, how to read the output). A bad request raises :class:`LocalRequestError`,
  which carries the HTTP status and OpenAI error body to answer with.
- :class:`Run` generates: text pieces pass through the stop sequences and the output
  reader (plain text, forced tool calls, or lenient tool-call detection).
- :func:`completion_body` / :class:`ChunkWriter` shape the result as OpenAI JSON.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tollway.core.errors import TimeoutError as TollwayTimeoutError
from tollway.local.engine import Engine, Generation, Sampling
from tollway.local.tools import (
    ParsedCall,
    ToolCallSplitter,
    call_or_answer_schema,
    forced_call_schema,
    parse_forced_calls,
    partial_suffix,
)

__all__ = [
    "ChunkWriter",
    "LocalRequestError",
    "Plan",
    "Run",
    "StopScanner",
    "answered_calls",
    "completion_body",
    "plan",
    "repeats",
    "template_messages",
]

Mode = Literal["text", "forced", "auto"]
_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
          "tool": "tool", "function": "tool"}


class LocalRequestError(Exception):
    """A request the local model cannot serve: answered with ``status`` and an OpenAI
    error body, which the dialect turns into the matching tollway error."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        code: str | None = None,
        param: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param
        self.kind = kind

    def body(self) -> bytes:
        error = {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}
        return json.dumps({"error": error}).encode("utf-8")


# --------------------------------------------------------------------------- plan


@dataclass(slots=True)
class Plan:
    """Everything a generation needs, checked before the model lock is taken."""

    model: str
    tokens: list[int]
    max_tokens: int
    sampling: Sampling
    stop: list[str]
    mode: Mode
    tool_names: list[str] = field(default_factory=list)
    grammar: Any = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    """The conversation in template form (to render it again without tools)."""
    answered: tuple[tuple[str, dict[str, Any]], ...] = ()
    """(name, arguments) of calls made and answered since the last user message (see
    :class:`Run`)."""
    answer_grammar: Any = None
    """The response format's grammar for an answer from tool results (None: prose)."""


def plan(body: Mapping[str, Any], engine: Engine, model: str) -> Plan:
    """Check an OpenAI chat-completions body and plan its generation on ``engine``."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise LocalRequestError("'messages' must be a non-empty list", param="messages")
    if body.get("n") not in (None, 1):
        raise LocalRequestError("a local model answers one choice per call (n=1)", param="n")
    tools = _tools(body.get("tools"))
    mode, only = _tool_mode(body.get("tool_choice"), tools)
    names = [t["function"]["name"] for t in tools]
    schema = _format_schema(body.get("response_format"))
    grammar_schema: dict[str, Any] | None = None
    if mode == "forced":
        parallel = body.get("parallel_tool_calls") is True
        grammar_schema = forced_call_schema(tools, only=only, parallel=parallel)
    elif schema is not None and mode == "auto":
        # Either a tool call or the requested format: the reader tells them apart.
        grammar_schema = call_or_answer_schema(tools, schema)
    elif schema is not None:
        grammar_schema = schema
    conversation = template_messages(messages)
    try:
        prompt = engine.render(conversation, tools if mode != "text" else None)
    except Exception as exc:  # raise_exception() in the template, or a Jinja error
        raise LocalRequestError(
            f"the model's chat template rejected the conversation: {exc}", param="messages"
        ) from None
    tokens = engine.tokenize(prompt)
    max_tokens = _max_tokens(body, len(tokens), engine.n_ctx)
    answered = answered_calls(conversation) if mode == "auto" else ()
    return Plan(
        model=model,
        tokens=tokens,
        max_tokens=max_tokens,
        sampling=_sampling(body),
        stop=_stops(body.get("stop")),
        mode=mode,
        tool_names=names,
        grammar=_grammar(engine, grammar_schema) if grammar_schema is not None else None,
        messages=conversation,
        answered=answered,
        answer_grammar=_grammar(engine, schema) if answered and schema is not None else None,
    )


def template_messages(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """OpenAI messages -> the plain shape chat templates expect (Hugging Face's): text
    content as a string, tool-call arguments as objects (templates ``tojson`` them)."""
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise LocalRequestError(f"messages[{index}] must be an object", param="messages")
        role = _ROLES.get(str(message.get("role")))
        if role is None:
            raise LocalRequestError(
                f"messages[{index}] has role {message.get('role')!r}; expected system, "
                "developer, user, assistant or tool",
                param="messages",
            )
        entry: dict[str, Any] = {"role": role, "content": _text(message.get("content"), index)}
        if role == "assistant" and message.get("tool_calls"):
            entry["tool_calls"] = [_call(call) for call in message["tool_calls"]]
        if role == "tool":
            entry["tool_call_id"] = str(message.get("tool_call_id") or "")
        if message.get("name"):
            entry["name"] = str(message["name"])
        out.append(entry)
    return out


def _text(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind in _TEXT_PARTS:
                texts.append(str(part.get("text") or ""))
            elif kind == "refusal":
                texts.append(str(part.get("refusal") or ""))
            else:
                raise LocalRequestError(
                    f"messages[{index}] holds a {kind!r} part; the local model reads text only",
                    param="messages",
                )
        return "".join(texts)
    raise LocalRequestError(
        f"messages[{index}].content must be a string or a list of parts", param="messages"
    )


def _call(call: Any) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, Mapping) else None
    fn = fn if isinstance(fn, Mapping) else {}
    arguments: Any = fn.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            pass  # the template shows the raw string; the model may still follow along
    return {
        "id": str(call.get("id") or "") if isinstance(call, Mapping) else "",
        "type": "function",
        "function": {"name": str(fn.get("name") or ""), "arguments": arguments},
    }


def _tools(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise LocalRequestError("'tools' must be a list", param="tools")
    tools: list[dict[str, Any]] = []
    for index, tool in enumerate(raw):
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(fn, Mapping) or not fn.get("name"):
            raise LocalRequestError(
                f"tools[{index}] must be {{'type': 'function', 'function': {{'name': ...}}}}",
                param="tools",
            )
        tools.append({"type": "function", "function": dict(fn)})
    return tools


def _tool_mode(choice: Any, tools: list[dict[str, Any]]) -> tuple[Mode, str | None]:
    if not tools or choice == "none":
        if isinstance(choice, Mapping) or choice == "required":
            raise LocalRequestError("tool_choice requires a tool, but no tools were given",
                                    param="tool_choice")
        return "text", None
    if choice is None or choice == "auto":
        return "auto", None
    if choice == "required":
        return "forced", None
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else choice.get("name")
        if name and any(t["function"]["name"] == name for t in tools):
            return "forced", str(name)
        raise LocalRequestError(
            f"tool_choice names {name!r}, which is not among the tools", param="tool_choice"
        )
    raise LocalRequestError(
        f"tool_choice must be 'auto', 'none', 'required' or a named function, got {choice!r}",
        param="tool_choice",
    )


def _format_schema(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    kind = raw.get("type") if isinstance(raw, Mapping) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = raw.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if isinstance(schema, Mapping):
            return dict(schema)
    raise LocalRequestError(
        "response_format must be {'type': 'text'}, {'type': 'json_object'} or "
        "{'type': 'json_schema', 'json_schema': {'schema': {...}}}",
        param="response_format",
    )


def _grammar(engine: Engine, schema: dict[str, Any]) -> Any:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        gbnf = json_schema_to_gbnf(json.dumps(schema))
        return engine.grammar(gbnf)
    except Exception as exc:  # the converter asserts on schemas it does not support
        detail = str(exc) or type(exc).__name__
        raise LocalRequestError(
            f"the JSON schema cannot be turned into a grammar for the local model: {detail}",
            param="response_format",
        ) from None


def _max_tokens(body: Mapping[str, Any], prompt_tokens: int, n_ctx: int) -> int:
    requested = body.get("max_completion_tokens", body.get("max_tokens"))
    if requested is not None and (not isinstance(requested, int) or requested < 1):
        raise LocalRequestError("max_tokens must be a positive integer", param="max_tokens")
    room = n_ctx - prompt_tokens
    if room < 1 or (requested is not None and requested > room):
        wanted = "" if requested is None else f" + {requested} completion tokens"
        raise LocalRequestError(
            f"This model's maximum context length is {n_ctx} tokens. However, you requested "
            f"{prompt_tokens} prompt tokens{wanted}. Shorten the messages or lower "
            "max_tokens, or raise TOLLWAY_LOCAL_CTX.",
            code="context_length_exceeded",
            param="messages",
        )
    return room if requested is None else requested


def _sampling(body: Mapping[str, Any]) -> Sampling:
    sampling = Sampling()
    for key, attr, kind in (
        ("temperature", "temperature", float),
        ("top_p", "top_p", float),
        ("top_k", "top_k", int),
        ("min_p", "min_p", float),
        ("frequency_penalty", "frequency_penalty", float),
        ("presence_penalty", "presence_penalty", float),
        ("seed", "seed", int),
    ):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or (
            kind is int and not isinstance(value, int)
        ):
            raise LocalRequestError(f"{key} must be a number, got {value!r}", param=key)
        if key == "temperature" and value < 0:
            raise LocalRequestError("temperature must be >= 0", param=key)
        setattr(sampling, attr, kind(value))
    return sampling


def _stops(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw] if raw else []
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return [s for s in raw if s]
    raise LocalRequestError("stop must be a string or a list of strings", param="stop")


# --------------------------------------------------------------------------- run


class StopScanner:
    """Cuts streamed text at the first stop sequence. A suffix that could be the start
    of one is held back until the next piece decides, so a stop sequence is never shown,
    even in part."""

    __slots__ = ("_pending", "_stops", "stopped")

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        if not self._stops:
            return piece
        text = self._pending + piece
        cut = min((i for i in (text.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._pending = ""
            return text[:cut]
        keep = max(partial_suffix(text, s) for s in self._stops)
        self._pending = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out


class Run:
    """One generation. Iterate :meth:`events` for content pieces (``str``) and, at the
    end, the tool calls (a list); then ``finish_reason`` and the token counts are set.

    Small models often answer a tool result by asking for the very same call again,
    which would spin a tool loop until its round limit. So in ``auto`` mode, when every
    call the model asks for was already made and answered since the last user message,
    the run answers from those results instead: it generates once more with the tools
    left out of the prompt and a grammar that makes the answer start as prose. Both
    generations count in the usage.
    """

    def __init__(
        self,
        plan: Plan,
        engine: Engine,
        *,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
    ) -> None:
        self.plan = plan
        self.engine = engine
        self.cancel = cancel
        self.deadline = deadline
        self.finish_reason = "stop"
        self.id = "chatcmpl-" + uuid.uuid4().hex
        self.created = int(time.time())
        self.prompt_tokens = len(plan.tokens)
        self.completion_tokens = 0
        self._stops = StopScanner(plan.stop)
        self._hit_limit = False

    def events(self) -> Generator[str | list[ParsedCall], None, None]:
        plan = self.plan
        splitter = ToolCallSplitter(plan.tool_names) if plan.mode == "auto" else None
        held: list[str] = []
        repeated = False
        pieces = self._generate(plan.tokens, plan.grammar, plan.max_tokens)
        try:
            for text in pieces:
                if plan.mode == "forced":
                    held.append(text)
                elif splitter is None:
                    yield text
                else:
                    shown = splitter.feed(text)
                    if shown:
                        yield shown
                    if plan.answered and splitter.holding and "}" in text:
                        repeated = self._repeats(splitter.complete_calls())
                        if repeated:
                            break  # stop generating the repeat at once
        finally:
            pieces.close()  # releases the model before a second generation takes it
        calls: list[ParsedCall] = []
        if plan.mode == "forced":
            text = "".join(held)
            parsed = parse_forced_calls(text)
            if parsed is None:
                if text:
                    yield text
            else:
                calls = parsed
        elif splitter is not None:
            rest, calls = splitter.finish()
            if repeated or self._repeats(calls):
                # What followed the repeated call is the model inventing its result.
                calls = []
                yield from self._answer_from_results()
            elif rest:
                yield rest
        if calls:
            self.finish_reason = "tool_calls"
            yield calls
        elif self._hit_limit and not self._stops.stopped:
            self.finish_reason = "length"

    def _repeats(self, calls: Sequence[ParsedCall]) -> bool:
        """Whether ``calls`` only repeat calls already made and answered."""
        answered = self.plan.answered
        return bool(calls) and all(repeats(call, answered) for call in calls)

    def _generate(
        self, tokens: list[int], grammar: Any, max_tokens: int
    ) -> Generator[str, None, None]:
        """Text pieces of one generation, cut at the stop sequences."""
        stops = self._stops
        state = Generation()
        pieces = self.engine.generate(
            tokens,
            max_tokens=max_tokens,
            sampling=self.plan.sampling,
            grammar=grammar,
            cancel=self.cancel,
            state=state,
        )
        try:
            for piece in pieces:
                if self.deadline is not None and time.monotonic() > self.deadline:
                    raise TollwayTimeoutError("the local model did not finish within the total timeout")
                text = stops.feed(piece)
                if text:
                    yield text
                if stops.stopped:
                    return
            tail = stops.flush()
            if tail:
                yield tail
        finally:
            pieces.close()
            self.completion_tokens += state.completion_tokens
            self._hit_limit = state.hit_limit

    def _answer_from_results(self) -> Iterator[str]:
        plan = self.plan
        budget = plan.max_tokens - self.completion_tokens
        self._hit_limit = budget < 1
        if budget < 1:
            return
        self._stops = StopScanner(plan.stop)  # a stop in the discarded repeat does not count
        engine = self.engine
        tokens = engine.tokenize(engine.render(plan.messages, None))
        budget = min(budget, engine.n_ctx - len(tokens))
        if budget < 1:
            return
        self.prompt_tokens += len(tokens)
        grammar = plan.answer_grammar or engine.grammar(PROSE_GBNF)
        yield from self._generate(tokens, grammar, budget)

    def usage(self) -> dict[str, Any]:
        prompt, completion = self.prompt_tokens, self.completion_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }


PROSE_GBNF = r"""root ::= first rest*
first ::= [^{\[<`"' \t\r\n]
rest ::= [^\x00]
"""
"""Text that does not open like a tool call (no JSON, tag, fence or quote first)."""


def repeats(call: ParsedCall, answered: Sequence[tuple[str, Mapping[str, Any]]]) -> bool:
    """Whether ``call`` asks again for an answered call: the same tool, and arguments that
    agree on every key both have (a small model re-asking "Oslo" as "Oslo, celsius" after
    the answer said "21 degrees celsius" is a repeat; "Bergen" after "Oslo" is not)."""
    try:
        args = json.loads(call.arguments)
    except ValueError:
        return False
    if not isinstance(args, dict):
        return False
    for name, done in answered:
        if name != call.name:
            continue
        shared = args.keys() & done.keys()
        if all(args[k] == done[k] for k in shared) and (shared or not (args or done)):
            return True
    return False


def answered_calls(messages: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, dict[str, Any]], ...]:
    """(name, arguments) of the calls made and answered since the last user message."""
    start = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    tail = messages[start + 1 :]
    results = {m.get("tool_call_id") for m in tail if m.get("role") == "tool"}
    out: list[tuple[str, dict[str, Any]]] = []
    for message in tail:
        for call in message.get("tool_calls") or ():
            arguments = call["function"]["arguments"]
            if call.get("id") in results and isinstance(arguments, dict):
                out.append((call["function"]["name"], arguments))
    return tuple(out)


# --------------------------------------------------------------------------- output


def _wire_calls(calls: Sequence[ParsedCall]) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


def completion_body(run: Run, content: str, calls: Sequence[ParsedCall]) -> dict[str, Any]:
    """The ``chat.completion`` object for a finished run."""
    message: dict[str, Any] = {"role": "assistant", "content": content or (None if calls else "")}
    if calls:
        message["tool_calls"] = _wire_calls(calls)
    return {
        "id": run.id,
        "object": "chat.completion",
        "created": run.created,
        "model": run.plan.model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": run.finish_reason, "logprobs": None}
        ],
        "usage": run.usage(),
    }


class ChunkWriter:
    """``chat.completion.chunk`` SSE bytes for a run, in OpenAI's order: a role chunk,
    content chunks, tool-call chunks, the finish chunk, a usage chunk with no choices,
    and ``[DONE]``."""

    def __init__(self, run: Run) -> None:
        self._run = run

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        run = self._run
        payload = {
            "id": run.id,
            "object": "chat.completion.chunk",
            "created": run.created,
            "model": run.plan.model,
            "choices": choices,
            **extra,
        }
        return b"data: " + json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n\n"

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self._chunk([{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}])

    def start(self) -> bytes:
        return self._delta({"role": "assistant", "content": ""})

    def content(self, text: str) -> bytes:
        return self._delta({"content": text})

    def tool_calls(self, calls: Sequence[ParsedCall]) -> bytes:
        wire = _wire_calls(calls)
        return self._delta({"tool_calls": [{"index": i, **call} for i, call in enumerate(wire)]})

    def finish(self) -> bytes:
        return self._delta({}, self._run.finish_reason)

    def usage(self) -> bytes:
        return self._chunk([], usage=self._run.usage())

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"
