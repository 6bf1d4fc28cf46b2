"""OpenAI-compatible ``POST /v1/embeddings``, ``/v1/images/generations`` and
``/v1/images/edits``.

Each reads OpenAI's request JSON, calls the Model for the alias inside the key's
attribution scope (so the key's budgets, rate limits, hours and ledger attribution apply
exactly as for chat), and writes OpenAI's answer JSON whatever provider served it:

- embeddings: ``encoding_format: base64`` (the openai SDK's default) is done here, as
  little-endian float32, so a Gemini or local model answers an OpenAI client in the form
  it asked for; ``input`` is a string or a list of strings (token arrays are refused:
  only the upstream's tokenizer could read them).
- images: bytes go out as ``b64_json``; a URL-only image (dall-e's default) as ``url``;
  a client asking ``response_format: url`` of an upstream that returned bytes gets a
  ``data:`` URL (the gateway hosts no files). ``usage`` is written when the upstream
  reported tokens (gpt-image, Gemini). Other fields (``background``, ``style``,
  ``response_format``...) pass through to the upstream untouched.
"""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tollway.core.cost.attribution import attribute
from tollway.core.errors import BadRequestError
from tollway.gateway.http import HttpRequest, JSONReply, dumps
from tollway.gateway.openai_routes import call_headers

if TYPE_CHECKING:
    from tollway.core.media_types import EmbeddingResponse, ImageResponse
    from tollway.gateway.runtime import Gateway

__all__ = ["embeddings", "images_edits", "images_generations"]

_EMBEDDING_FIELDS = ("model", "input", "dimensions", "encoding_format", "user")
_IMAGE_FIELDS = ("model", "prompt", "n", "size", "quality", "output_format", "user")


def _model_name(body: Mapping[str, Any]) -> str:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise BadRequestError("the request body needs 'model' (a model name or alias)")
    return name


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise BadRequestError(
        "'input' must be a string or a non-empty list of strings (token arrays are not "
        "accepted: send the text)"
    )


def _encode(vector: list[float], encoding: str) -> Any:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def embeddings_to_openai(result: EmbeddingResponse, name: str, encoding: str) -> dict[str, Any]:
    tokens = result.usage.input_tokens
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": _encode(v, encoding)}
                 for i, v in enumerate(result.vectors)],
        "model": name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


async def embeddings(gw: Gateway, req: HttpRequest) -> JSONReply:
    body = req.json()
    if not isinstance(body, Mapping):
        raise BadRequestError("the request body must be a JSON object")
    name = _model_name(body)
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadRequestError(f"'encoding_format' must be 'float' or 'base64'; got {encoding!r}")
    extra = {k: v for k, v in body.items() if k not in _EMBEDDING_FIELDS}
    model = gw.model_for(req.key, name)
    key_id = req.key.id if req.key else None
    async with attribute(gw.attribution(req.key, req.headers, body.get("user"))):
        result = await model.aembed(
            _texts(body.get("input")), dimensions=body.get("dimensions"),
            input_type=req.headers.get("x-tollway-input-type"), extra=extra,
        )
    gw.metrics.call(name, key_id, result)
    return JSONReply(200, dumps(embeddings_to_openai(result, name, encoding)), call_headers(result))


def images_to_openai(result: ImageResponse, response_format: str | None) -> dict[str, Any]:
    data = []
    for image in result.images:
        item: dict[str, Any]
        if image.data is None:
            item = {"url": image.url}
        elif response_format == "url":
            item = {"url": image.data_url}
        else:
            item = {"b64_json": image.base64}
        if image.revised_prompt is not None:
            item["revised_prompt"] = image.revised_prompt
        data.append(item)
    created = (result.provider_data or {}).get("created")
    out: dict[str, Any] = {"created": created if isinstance(created, int) else int(time.time()),
                           "data": data}
    for key in ("size", "quality"):
        value = getattr(result, key)
        if value is not None:
            out[key] = value
    u = result.usage
    if u.input_tokens or u.output_tokens:
        out["usage"] = {
            "input_tokens": u.input_tokens,
            "input_tokens_details": {"text_tokens": u.input_tokens - u.input_image_tokens,
                                     "image_tokens": u.input_image_tokens},
            "output_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens,
        }
    return out


async def images_generations(gw: Gateway, req: HttpRequest) -> JSONReply:
    body = req.json()
    if not isinstance(body, Mapping):
        raise BadRequestError("the request body must be a JSON object")
    name = _model_name(body)
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise BadRequestError("the request body needs 'prompt' (a string)")
    extra = {k: v for k, v in body.items() if k not in _IMAGE_FIELDS}
    model = gw.model_for(req.key, name)
    key_id = req.key.id if req.key else None
    async with attribute(gw.attribution(req.key, req.headers, body.get("user"))):
        result = await model.agenerate_image(
            prompt, size=body.get("size"), quality=body.get("quality"), n=body.get("n") or 1,
            output_format=body.get("output_format"), extra=extra,
        )
    gw.metrics.call(name, key_id, result)
    payload = images_to_openai(result, body.get("response_format"))
    return JSONReply(200, dumps(payload), call_headers(result))


_EDIT_FIELDS = frozenset({*_IMAGE_FIELDS, "response_format", "image", "mask"})


def _form_int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequestError(f"the form field {name!r} must be a whole number; got {value!r}") from None


async def images_edits(gw: Gateway, req: HttpRequest) -> JSONReply:
    from tollway.core.types import Image
    from tollway.gateway.multipart import read_form

    form = read_form(req.body, req.headers.get("content-type", ""))
    fields = form.fields
    name = _model_name(fields)
    prompt = fields.get("prompt")
    if not prompt:
        raise BadRequestError("the form needs 'prompt' (what to change in the image)")
    images = [Image(data=f.data, media_type=f.media_type if f.media_type.startswith("image/")
                    else "image/png") for f in form.files.get("image", [])]
    if not images:
        raise BadRequestError("the form needs at least one 'image' file (the image to edit)")
    masks = form.files.get("mask") or []
    mask = Image(data=masks[0].data, media_type="image/png") if masks else None
    extra = {k: v for k, v in fields.items() if k not in _EDIT_FIELDS}
    model = gw.model_for(req.key, name)
    key_id = req.key.id if req.key else None
    async with attribute(gw.attribution(req.key, req.headers, fields.get("user"))):
        result = await model.aedit_image(
            images if len(images) > 1 else images[0], prompt, mask=mask,
            size=fields.get("size") or None, quality=fields.get("quality") or None,
            n=_form_int(fields.get("n"), "n") or 1, output_format=fields.get("output_format") or None,
            extra=extra,
        )
    gw.metrics.call(name, key_id, result)
    payload = images_to_openai(result, fields.get("response_format"))
    return JSONReply(200, dumps(payload), call_headers(result))
