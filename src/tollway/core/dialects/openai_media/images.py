"""OpenAI ``POST /images/generations`` and ``/images/edits`` (multipart), sans-I/O.

Usage, by model family:

- gpt-image (``gpt-image-1``, ``-1.5``, ``-mini``, ``chatgpt-image``): the answer's
  ``usage`` has ``input_tokens`` (text + image, detailed in ``input_tokens_details``) and
  ``output_tokens`` (image tokens, and text tokens when ``output_tokens_details`` says
  so). They map to canonical Usage with the image subsets in ``input_image_tokens`` /
  ``output_image_tokens``, so each is billed at its own rate.
- dall-e-2 / dall-e-3: no usage; each image is one ``Usage.units`` entry named by size
  and quality (``image:1024x1024:hd``), the request's or the model's default.

Only parameters the caller gave are sent: dall-e-2 rejects ``quality`` (a recorded 400).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tollway.core.dialects.base import Exchange, HttpRequest
from tollway.core.dialects.openai_chat.errors import error_from_http
from tollway.core.dialects.openai_media.multipart import FilePart, encode_multipart
from tollway.core.errors import InvalidRequestError, ProviderError, ServerError
from tollway.core.media_types import GeneratedImage, ImageRequest, ImageResponse, image_unit
from tollway.core.types import Image, Usage

__all__ = ["PER_IMAGE_DEFAULTS", "OpenAIImageDialect"]

PER_IMAGE_DEFAULTS: dict[str, tuple[str, str]] = {
    "dall-e-2": ("1024x1024", "standard"),
    "dall-e-3": ("1024x1024", "standard"),
}
"""Models priced per image, with the size and quality the API uses when none is given."""

_FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}


def _per_image(model: str) -> tuple[str, str] | None:
    for prefix, defaults in PER_IMAGE_DEFAULTS.items():
        if model == prefix or model.startswith(prefix + "-"):
            return defaults
    return None


def _file(image: Image, name: str, index: int) -> FilePart:
    if image.data is None:
        raise InvalidRequestError(
            name, "OpenAI image edits take image bytes, not URLs: pass bytes, a path or an "
            "Image with data",
        )
    media = image.media_type or "image/png"
    suffix = media.rsplit("/", 1)[-1]
    return FilePart(name, f"{name.strip('[]')}-{index}.{suffix}", image.data, media)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def token_usage(usage: Mapping[str, Any]) -> Usage:
    """gpt-image usage -> canonical (module docstring)."""
    inp, out = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
    in_details = usage.get("input_tokens_details") or {}
    out_details = usage.get("output_tokens_details")
    image_out = out if not out_details else _int(out_details.get("image_tokens"))
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=_int(in_details.get("cached_tokens")),
        input_image_tokens=_int(in_details.get("image_tokens")),
        output_image_tokens=image_out,
    )


@dataclass(frozen=True, slots=True)
class OpenAIImageDialect:
    name: str = "openai_images"

    def exchanges(self, request: ImageRequest, model: str) -> list[Exchange]:
        params: dict[str, Any] = {"model": model, "prompt": request.prompt}
        if request.n != 1:
            params["n"] = request.n
        for key in ("size", "quality", "output_format"):
            value = getattr(request, key)
            if value is not None:
                params[key] = value
        params.update(request.extra)
        headers = dict(request.extra_headers)
        if not request.is_edit:
            return [Exchange(HttpRequest("/images/generations", params, headers), count=request.n)]
        name = "image[]" if len(request.images) > 1 else "image"
        files = [_file(img, name, i) for i, img in enumerate(request.images)]
        if request.mask is not None:
            files.append(_file(request.mask, "mask", 0))
        fields = [(k, v if isinstance(v, str) else _form_value(v)) for k, v in params.items()]
        content, content_type = encode_multipart(fields, files)
        headers["content-type"] = content_type
        http = HttpRequest("/images/edits", {}, headers, content=content)
        return [Exchange(http, count=request.n)]

    def parse_response(
        self, body: Mapping[str, Any], exchange: Exchange, request: ImageRequest, model: str
    ) -> ImageResponse:
        data = body.get("data")
        if not isinstance(data, list):
            raise ServerError("an images answer has no 'data' list", body=str(body)[:200])
        fmt = body.get("output_format") or request.output_format or "png"
        media_type = _FORMATS.get(str(fmt).lower(), "image/png")
        images = []
        for item in data:
            if not isinstance(item, Mapping):
                raise ServerError("an images answer lists something that is not an image")
            raw = item.get("b64_json")
            try:
                payload = base64.b64decode(raw, validate=True) if isinstance(raw, str) else None
            except ValueError:
                raise ServerError("an image's b64_json is not valid base64") from None
            if payload is None and not item.get("url"):
                raise ServerError("an image in the answer has neither b64_json nor url")
            images.append(GeneratedImage(
                data=payload, url=item.get("url"), media_type=media_type,
                revised_prompt=item.get("revised_prompt"),
            ))
        size = body.get("size") or request.size
        quality = body.get("quality") or request.quality
        defaults = _per_image(model)
        if defaults is not None:
            size, quality = size or defaults[0], quality or defaults[1]
            usage = Usage(units={image_unit(size, quality): len(images)})
        elif isinstance(body.get("usage"), Mapping):
            usage = token_usage(body["usage"])
        else:
            # A compatible server that reports neither: counted per image, so a price
            # configured per image applies and an unpriced one stays unknown.
            usage = Usage(units={image_unit(size, quality): len(images)})
        return ImageResponse(
            images=images, model=model, provider="", usage=usage, size=size, quality=quality,
            provider_data={"created": body["created"]} if "created" in body else None,
        )

    def parse_error(
        self, status: int, body: bytes | str, headers: Mapping[str, str]
    ) -> ProviderError:
        return error_from_http(status, body, headers)


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
