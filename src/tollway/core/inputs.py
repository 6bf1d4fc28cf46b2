"""The public-input boundary: whatever a caller passes -> a canonical Request.

A prompt string, Messages, OpenAI-style dicts (read by the OpenAI interchange code),
tools as Tool objects, OpenAI dicts or pydantic models, and the everyday parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from tollway.core.dialects.openai_interchange.reading import (
    message_from_openai,
    to_response_format,
    to_tool_choice,
    tool_from_openai,
)
from tollway.core.errors import BadRequestError, InvalidRequestError
from tollway.core.media_types import EmbeddingRequest, ImageRequest
from tollway.core.types import (
    Image,
    Message,
    Reasoning,
    Request,
    Tool,
)

__all__ = [
    "build_embedding_request",
    "build_image_request",
    "build_request",
    "to_image",
    "to_messages",
    "to_response_format",
    "to_tool",
    "to_tool_choice",
]


def to_messages(value: str | Message | Mapping[str, Any] | Iterable[Any]) -> list[Message]:
    """Accept the shapes users already write: a prompt string, a Message, an OpenAI-style
    message dict, or a list mixing Messages and dicts."""
    if isinstance(value, str):
        return [Message.user(value)]
    if isinstance(value, Message):
        return [value]
    if isinstance(value, Mapping):
        return [message_from_openai(value)]
    out: list[Message] = []
    for item in value:
        if type(item) is dict:  # the common case, without the ABC check
            out.append(message_from_openai(item))
        elif isinstance(item, Message):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(message_from_openai(item))
        elif isinstance(item, str):
            out.append(Message.user(item))
        else:
            raise BadRequestError(
                f"a message must be a str, a tollway Message or an OpenAI-style dict; "
                f"got {type(item).__name__}"
            )
    return out


def to_tool(value: Tool | Mapping[str, Any] | type[Any]) -> Tool:
    if isinstance(value, Tool):
        return value
    if isinstance(value, Mapping):
        return tool_from_openai(value)
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return Tool.from_model(value)
    raise BadRequestError(
        f"a tool must be a tollway Tool, an OpenAI tool dict or a pydantic model; got {value!r}"
    )


_REASONING_KEYS = ("effort", "budget_tokens", "include_thoughts")


def _reasoning(value: Any) -> Reasoning | None:
    if value is None or isinstance(value, Reasoning):
        return value
    if isinstance(value, str):
        return Reasoning(effort=value)
    if not isinstance(value, Mapping):
        raise InvalidRequestError(
            "reasoning", f"expected an effort string (e.g. 'low'), a Reasoning or a mapping "
            f"with {', '.join(_REASONING_KEYS)}; got {type(value).__name__}",
        )
    unknown = sorted(set(value) - set(_REASONING_KEYS))
    if unknown:
        raise InvalidRequestError(
            "reasoning", f"unknown key(s) {', '.join(map(repr, unknown))}; expected "
            f"{', '.join(_REASONING_KEYS)}",
        )
    effort, budget = value.get("effort"), value.get("budget_tokens")
    if effort is not None and not isinstance(effort, str):
        raise InvalidRequestError("reasoning.effort", f"expected a string such as 'low'; got {effort!r}")
    _check_number("reasoning.budget_tokens", budget, int, minimum=0)
    return Reasoning(**value)


def _check_number(name: str, value: Any, kind: type, *, minimum: float | None = None) -> None:
    """``value`` must be None or a number of ``kind`` (int for counts; float accepts
    ints too), at least ``minimum``; bools are not numbers here."""
    if value is None:
        return
    numeric = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, numeric):
        what = "a whole number" if kind is int else "a number"
        raise InvalidRequestError(name, f"expected {what}; got {value!r}")
    if minimum is not None and value < minimum:
        raise InvalidRequestError(name, f"must be at least {minimum:g}; got {value!r}")


def build_request(
    messages: Any,
    *,
    tools: Sequence[Any] | None = None,
    tool_choice: Any = None,
    response_format: Any = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    stop: str | Sequence[str] | None = None,
    seed: int | None = None,
    parallel_tool_calls: bool | None = None,
    reasoning: Reasoning | Mapping[str, Any] | str | None = None,
    extra: Mapping[str, Any] | None = None,
    extra_headers: Mapping[str, str] | None = None,
    output_modalities: Sequence[str] | None = None,
) -> Request:
    """A Request from the everyday shapes; a Request passes through unchanged. Anything
    that is not a valid prompt, message list or parameter is an InvalidRequestError
    naming the field, raised here: before any budget or network step."""
    if isinstance(messages, Request):
        return messages
    if messages is None or not isinstance(messages, str | Message | Mapping | Iterable):
        raise InvalidRequestError(
            "messages", "expected a prompt string, a tollway Message, an OpenAI-style message "
            f"dict or a list of them; got {type(messages).__name__}",
        )
    canonical = to_messages(messages)
    if not canonical:
        raise InvalidRequestError("messages", "the list is empty: give at least one message")
    _check_number("max_tokens", max_tokens, int, minimum=1)
    _check_number("temperature", temperature, float, minimum=0)
    _check_number("top_p", top_p, float, minimum=0)
    _check_number("seed", seed, int)
    if stop is not None and not isinstance(stop, str) and (
        not isinstance(stop, Sequence) or not all(isinstance(s, str) for s in stop)
    ):
        raise InvalidRequestError("stop", f"expected a string or a list of strings; got {stop!r}")
    reasoning = _reasoning(reasoning)
    modalities = _modalities(output_modalities)
    return Request(
        messages=canonical,
        tools=[to_tool(t) for t in tools] if tools else [],
        tool_choice=None if tool_choice is None else to_tool_choice(tool_choice),
        response_format=None if response_format is None else to_response_format(response_format),
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop=[stop] if isinstance(stop, str) else (list(stop) if stop else None),
        seed=seed,
        parallel_tool_calls=parallel_tool_calls,
        reasoning=reasoning,
        extra=dict(extra) if extra else {},
        extra_headers=dict(extra_headers) if extra_headers else {},
        output_modalities=modalities,
    )


_MODALITIES = ("text", "image")


def _modalities(value: Sequence[str] | None) -> tuple[str, ...] | None:
    """``output_modalities``: a list of ``"text"`` / ``"image"`` (at least one)."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence) or not value or not all(
        isinstance(m, str) and m.lower() in _MODALITIES for m in value
    ):
        raise InvalidRequestError(
            "output_modalities", f"expected a non-empty list of {' / '.join(_MODALITIES)}, "
            f"e.g. ['text', 'image']; got {value!r}",
        )
    return tuple(m.lower() for m in value)


# --------------------------------------------------------------------------- embeddings, images

_INPUT_TYPES = ("query", "document")


def _extras(
    extra: Mapping[str, Any] | None, params: Mapping[str, Any]
) -> dict[str, Any]:
    """Provider parameters: ``extra=`` merged with any other keyword, passed through."""
    out = dict(extra) if extra else {}
    out.update(params)
    return out


def build_embedding_request(
    texts: Any,
    *,
    dimensions: int | None = None,
    input_type: str | None = None,
    extra: Mapping[str, Any] | None = None,
    extra_headers: Mapping[str, str] | None = None,
    **params: Any,
) -> EmbeddingRequest:
    """An EmbeddingRequest from a text or a sequence of texts (an EmbeddingRequest passes
    through). Other keywords (``encoding_format``, ``user``...) go into the body as is."""
    if isinstance(texts, EmbeddingRequest):
        return texts
    if isinstance(texts, str):
        inputs = [texts]
    elif isinstance(texts, Sequence) and all(isinstance(t, str) for t in texts):
        inputs = list(texts)
    else:
        raise InvalidRequestError(
            "texts", f"expected a string or a sequence of strings; got {type(texts).__name__}"
        )
    if not inputs:
        raise InvalidRequestError("texts", "the list is empty: give at least one text")
    _check_number("dimensions", dimensions, int, minimum=1)
    if input_type is not None and input_type not in _INPUT_TYPES:
        raise InvalidRequestError(
            "input_type", f"expected 'query' or 'document'; got {input_type!r}"
        )
    return EmbeddingRequest(
        inputs=inputs,
        dimensions=dimensions,
        input_type=input_type,  # type: ignore[arg-type]
        extra=_extras(extra, params),
        extra_headers=dict(extra_headers) if extra_headers else {},
    )


def to_image(value: Any, name: str = "image") -> Image:
    """An input image from bytes, a path, or a tollway Image (media type sniffed from
    the bytes when not given: PNG, JPEG, WebP, GIF)."""
    if isinstance(value, Image):
        if value.data is not None and not value.media_type:
            return Image(data=value.data, media_type=sniff_media_type(value.data))
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return Image(data=data, media_type=sniff_media_type(data))
    if isinstance(value, str | PathLike):
        path = Path(value)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidRequestError(name, f"cannot read {str(path)!r}: {exc.strerror}") from None
        return Image(data=data, media_type=sniff_media_type(data))
    raise InvalidRequestError(
        name, f"expected image bytes, a file path or a tollway Image; got {type(value).__name__}"
    )


def sniff_media_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return "image/png"


def build_image_request(
    prompt: Any,
    *,
    size: str | None = None,
    quality: str | None = None,
    n: int = 1,
    output_format: str | None = None,
    image: Any = None,
    mask: Any = None,
    extra: Mapping[str, Any] | None = None,
    extra_headers: Mapping[str, str] | None = None,
    **params: Any,
) -> ImageRequest:
    """An ImageRequest (an edit when ``image`` is given: one image or a list)."""
    if isinstance(prompt, ImageRequest):
        return prompt
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequestError("prompt", f"expected a non-empty string; got {prompt!r}")
    _check_number("n", n, int, minimum=1)
    for field_name, value in (("size", size), ("quality", quality), ("output_format", output_format)):
        if value is not None and not isinstance(value, str):
            raise InvalidRequestError(field_name, f"expected a string; got {value!r}")
    images: list[Image] = []
    if image is not None:
        many = isinstance(image, list | tuple)
        images = [to_image(v) for v in image] if many else [to_image(image)]
        if not images:
            raise InvalidRequestError("image", "the list is empty: give the image to edit")
    return ImageRequest(
        prompt=prompt,
        size=size,
        quality=quality,
        n=n,
        output_format=output_format,
        images=images,
        mask=None if mask is None else to_image(mask, "mask"),
        extra=_extras(extra, params),
        extra_headers=dict(extra_headers) if extra_headers else {},
    )
