"""A ``POST /v1/responses`` body -> ``(model, Request, stream)``.

Input items map onto the canonical conversation the way the outbound dialect
(:mod:`tollway.core.dialects.openai_responses.request`) maps it out, so a conversation that
went out through that dialect reads back the same:

- ``input`` as a string is one user message; ``instructions`` a leading system message;
- a message item (``{"role": ..., "content": ...}``, ``type: "message"`` optional) with
  ``input_text`` / ``input_image`` / ``input_file`` / ``input_audio`` parts; ``developer``
  is a system message;
- assistant-side items (``message`` with ``output_text`` / ``refusal``, ``function_call``,
  ``reasoning``, server-run tool items) fold into one assistant message per run of
  consecutive items, read by the same code that reads a response's ``output``;
- ``function_call_output`` -> a tool message with a ToolResult.

The gateway keeps no conversations: ``previous_response_id``, ``item_reference`` items,
``conversation`` and ``background`` are refused with a message that says to send the whole
input. Built-in tools (``web_search``, ``file_search``...) only run at OpenAI, so they are
refused too; function tools are what every provider can serve. A bare
``{"type": "image_generation"}`` tool is the exception: it asks the upstream for image
output (``Request.output_modalities``), which Gemini image models and Responses models
serve; their images come back as ``image_generation_call`` items. Keys with no canonical
meaning that steer OpenAI's storage or output (``store``, ``include``, ``metadata``,
``truncation``...) are accepted and not forwarded; any other unknown key rides in
``request.extra`` like on ``/v1/chat/completions``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tollway.core.dialects.openai_interchange.reading import (
    part_from_openai,
    split_data_url,
    to_tool_choice,
)
from tollway.core.dialects.openai_responses.response import parse_output
from tollway.core.errors import BadRequestError, InvalidRequestError
from tollway.core.types import (
    File,
    Message,
    Part,
    Reasoning,
    Request,
    ResponseFormat,
    Text,
    Tool,
    ToolResult,
)

__all__ = ["request_from_responses"]


def _bad(message: str, *, param: str) -> InvalidRequestError:
    """A typed error naming the offending field (the gateway returns it as ``param``)."""
    return InvalidRequestError(param, message)

_KNOWN = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "text", "temperature",
        "top_p", "max_output_tokens", "parallel_tool_calls", "reasoning", "stream", "user",
    }
)
_NOT_FORWARDED = frozenset(
    {
        "store", "include", "metadata", "truncation", "stream_options", "prompt_cache_key",
        "safety_identifier", "service_tier", "top_logprobs", "max_tool_calls",
    }
)
"""Accepted, echoed where the response object has the field, not sent upstream: they
steer OpenAI's own storage and output options, which another provider would reject."""
_STATEFUL = {
    "previous_response_id": "the gateway keeps no conversations; send the whole "
    "conversation as 'input' (earlier output items included) instead of "
    "'previous_response_id'",
    "conversation": "the gateway keeps no conversations; send the whole conversation "
    "as 'input' instead of 'conversation'",
    "prompt": "stored prompts live at OpenAI; send 'instructions' and 'input' instead of 'prompt'",
}
_ASSISTANT_ITEMS = frozenset(
    {"function_call", "reasoning", "web_search_call", "file_search_call",
     "code_interpreter_call", "image_generation_call", "computer_call", "mcp_call"}
)
_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}


def request_from_responses(body: Mapping[str, Any]) -> tuple[str, Request, bool]:
    """``(model, Request, stream)`` from a Responses request body (see the module doc)."""
    if not isinstance(body, Mapping):
        raise BadRequestError("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestError("the request body needs 'model' (a model name or alias)")
    for key, why in _STATEFUL.items():
        if body.get(key) is not None:
            raise _bad(why, param=key)
    if body.get("background"):
        raise _bad(
            "background responses are not supported by the gateway; send the request "
            "without 'background' (stream it if it is long)", param="background",
        )
    messages = _messages(body.get("input"), body.get("instructions"))
    reasoning = body.get("reasoning")
    request = Request(
        messages=messages,
        tools=_tools(body.get("tools")),
        output_modalities=_image_output(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
        response_format=_format(body.get("text")),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        max_tokens=body.get("max_output_tokens"),
        parallel_tool_calls=body.get("parallel_tool_calls"),
        reasoning=_reasoning(reasoning),
        extra={k: v for k, v in body.items() if k not in _KNOWN and k not in _NOT_FORWARDED
               and k not in _STATEFUL and k != "background"},
    )
    return model, request, bool(body.get("stream"))


# --------------------------------------------------------------------------- input


def _messages(raw: Any, instructions: Any) -> list[Message]:
    messages: list[Message] = []
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _bad("'instructions' must be a string", param="instructions")
        if instructions:
            messages.append(Message.system(instructions))
    if isinstance(raw, str):
        if not raw:
            raise _bad("'input' is an empty string; send the prompt", param="input")
        messages.append(Message.user(raw))
        return messages
    if not isinstance(raw, list) or not raw:
        raise _bad(
            "the request body needs 'input': a string or a non-empty list of items",
            param="input",
        )
    assistant: list[Any] = []  # consecutive assistant-side items, folded into one message
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise _bad(
                f"must be an item object, got {type(item).__name__}",
                param=f"input[{index}]",
            )
        kind = item.get("type")
        role = item.get("role")
        if kind in _ASSISTANT_ITEMS or (role == "assistant" and kind in (None, "message")):
            assistant.append(_assistant_item(item))
            continue
        if assistant:
            messages.append(_assistant_message(assistant))
            assistant = []
        if kind == "function_call_output":
            messages.append(_tool_output(item, index))
        elif kind == "item_reference":
            raise _bad(
                "input item references need a stored conversation, which the gateway does "
                "not keep; send the referenced item itself", param=f"input[{index}]",
            )
        elif kind in (None, "message"):
            messages.append(_message(item, index))
        else:
            raise _bad(
                f"items of type {kind!r} cannot be sent to any provider by the gateway; "
                "use message, function_call, function_call_output or reasoning items", param=f"input[{index}]",
            )
    if assistant:
        messages.append(_assistant_message(assistant))
    return messages


def _message(item: Mapping[str, Any], index: int) -> Message:
    role = _ROLES.get(str(item.get("role")))
    if role is None:
        raise _bad(
            f"{item.get('role')!r} is not one of user, system, developer, assistant", param=f"input[{index}].role",
        )
    content = item.get("content")
    if isinstance(content, str):
        return Message(role, [Text(content)])  # type: ignore[arg-type]
    if not isinstance(content, list):
        raise _bad(
            "must be a string or a list of input parts",
            param=f"input[{index}].content",
        )
    return Message(role, [_input_part(part) for part in content])  # type: ignore[arg-type]


def _input_part(part: Any) -> Part:
    if isinstance(part, Mapping) and part.get("type") == "input_file":
        data = part.get("file_data")
        if isinstance(data, str) and data.startswith("data:"):
            media_type, raw = split_data_url(data)
            return File(data=raw, media_type=media_type, filename=part.get("filename"))
        if part.get("file_id") or part.get("file_url"):
            return File(url=part.get("file_url"), file_id=part.get("file_id"),
                        filename=part.get("filename"))
        raise _bad("an input_file part needs file_data (a data: URL), file_url "
                              "or file_id", param="input")
    if isinstance(part, Mapping) and part.get("type") == "input_image" and part.get("file_id"):
        raise _bad(
            "input_image by file_id refers to a file stored at OpenAI; send image_url "
            "(an https or data: URL) instead", param="input",
        )
    return part_from_openai(part)


def _assistant_item(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """The short assistant form ``{"role": "assistant", "content": "..."}`` as a message
    item, so one reader serves both forms."""
    if item.get("type") in (None, "message") and isinstance(item.get("content"), str):
        return {"type": "message", "role": "assistant", "id": item.get("id"),
                "content": [{"type": "output_text", "text": item["content"]}]}
    if item.get("type") is None:
        return {**item, "type": "message"}
    return item


def _assistant_message(items: Sequence[Any]) -> Message:
    parts = parse_output(items)
    return Message("assistant", parts)


def _tool_output(item: Mapping[str, Any], index: int) -> Message:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(
            "a function_call_output needs the call_id of the function_call it answers", param=f"input[{index}].call_id",
        )
    output = item.get("output")
    content: str | list[Part]
    if isinstance(output, list):
        content = [_input_part(p) for p in output]
    elif isinstance(output, str):
        content = output
    else:
        raise _bad(
            "must be a string or a list of input parts",
            param=f"input[{index}].output",
        )
    return Message("tool", [ToolResult(call_id, content)])


# --------------------------------------------------------------------------- options


def _image_output(raw: Any) -> tuple[str, ...] | None:
    """A bare ``image_generation`` tool asks for images beside text."""
    if isinstance(raw, list) and any(
        isinstance(t, Mapping) and t.get("type") == "image_generation" for t in raw
    ):
        return ("text", "image")
    return None


def _tools(raw: Any) -> list[Tool]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _bad("'tools' must be a list of tool objects", param="tools")
    tools: list[Tool] = []
    for index, spec in enumerate(raw):
        if isinstance(spec, Mapping) and spec.get("type") == "image_generation":
            extra = sorted(k for k in spec if k != "type")
            if extra:
                raise _bad(
                    f"the image_generation tool's options ({', '.join(extra)}) are not "
                    "forwarded: the gateway asks the upstream model for image output "
                    "(Gemini image models, Responses models); send "
                    "{'type': 'image_generation'} alone", param=f"tools[{index}]",
                )
            continue
        if not isinstance(spec, Mapping) or spec.get("type") != "function":
            kind = spec.get("type") if isinstance(spec, Mapping) else type(spec).__name__
            raise _bad(
                f"a {kind!r} tool; the gateway serves function tools "
                "(built-in tools such as web_search run only at OpenAI: call OpenAI "
                "directly for them)", param=f"tools[{index}]",
            )
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise _bad("a function tool needs a name", param=f"tools[{index}].name")
        tools.append(Tool(
            name=name,
            description=str(spec.get("description") or ""),
            parameters=dict(spec.get("parameters") or {"type": "object", "properties": {}}),
            strict=spec.get("strict"),
        ))
    return tools


def _tool_choice(raw: Any) -> Any:
    if raw is None:
        return None
    if isinstance(raw, Mapping) and raw.get("type") not in (None, "function"):
        raise _bad(
            f"tool_choice of type {raw.get('type')!r} names a built-in tool; use 'auto', "
            "'none', 'required' or {'type': 'function', 'name': ...}", param="tool_choice",
        )
    return to_tool_choice(raw)


def _format(text: Any) -> ResponseFormat | None:
    if text is None:
        return None
    fmt = text.get("format") if isinstance(text, Mapping) else None
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat(schema=None, strict=False)
    if kind == "json_schema" and isinstance(fmt.get("schema"), Mapping):
        return ResponseFormat(
            schema=dict(fmt["schema"]), name=str(fmt.get("name") or "response"),
            strict=bool(fmt.get("strict", True)), description=fmt.get("description"),
        )
    raise _bad(
        "text.format must be {'type': 'text'}, {'type': 'json_object'} or {'type': "
        "'json_schema', 'name': ..., 'schema': {...}}", param="text.format",
    )


def _reasoning(raw: Any) -> Reasoning | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _bad("'reasoning' must be an object like {'effort': 'low'}",
                              param="reasoning")
    effort = raw.get("effort")
    if effort is None:
        return None
    return Reasoning(effort=str(effort), include_thoughts=raw.get("summary") is not None)
