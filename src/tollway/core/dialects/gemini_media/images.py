"""Image generation on Google's APIs, sans-I/O: Gemini image models through
``generateContent`` and Imagen through ``:predict`` (Gemini API and Vertex AI alike).

- Gemini (``gemini-2.5-flash-image``, ``gemini-3-pro-image-preview``...): the prompt (and,
  for an edit, the input images as ``inlineData``) in one user turn,
  ``generationConfig.responseModalities: ["IMAGE"]``; images come back as ``inlineData``
  parts, possibly beside text. One image per request, so ``n`` images are ``n``
  requests. ``size`` is an aspect ratio (``"16:9"``, or ``"1024x1024"`` reduced to
  ``"1:1"``) or an image size (``"1K"``, ``"2K"``, ``"4K"``). Usage is token usage;
  ``candidatesTokensDetails`` gives the image tokens, billed at the image-output rate.
- Imagen (``imagen-4.0-generate-001``...): ``instances: [{"prompt"}]``,
  ``parameters.sampleCount = n``; priced per image (``Usage.units``).

Gemini has no ``quality`` or ``output_format`` parameter: asking for one is an
InvalidRequestError, not a silently ignored wish.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from math import gcd
from typing import Any

from tollway.core.dialects.base import Exchange, HttpRequest
from tollway.core.dialects.gemini.errors import parse_error
from tollway.core.dialects.gemini.response import raise_for_payload, usage_from_metadata
from tollway.core.errors import InvalidRequestError, ProviderError, ServerError
from tollway.core.media_types import GeneratedImage, ImageRequest, ImageResponse, image_unit
from tollway.core.types import Usage

__all__ = ["GeminiImageDialect", "ImagenDialect", "image_config"]

IMAGE_SIZES = ("1K", "2K", "4K")
_IMAGEN_FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg"}


def image_config(size: str | None) -> dict[str, str]:
    """``size`` as Gemini's ``imageConfig``: an aspect ratio or an image size."""
    if size is None:
        return {}
    if size.upper() in IMAGE_SIZES:
        return {"imageSize": size.upper()}
    if ":" in size:
        return {"aspectRatio": size}
    width, sep, height = size.lower().partition("x")
    if sep and width.isdigit() and height.isdigit() and int(width) and int(height):
        w, h = int(width), int(height)
        d = gcd(w, h)
        return {"aspectRatio": f"{w // d}:{h // d}"}
    raise InvalidRequestError(
        "size", f"expected an aspect ratio ('16:9'), WIDTHxHEIGHT or one of "
        f"{', '.join(IMAGE_SIZES)}; got {size!r}",
    )


def _refuse(request: ImageRequest, *names: str) -> None:
    for name in names:
        if getattr(request, name) is not None:
            raise InvalidRequestError(
                name, f"Google's image APIs take no {name}; leave it unset (size sets the "
                "aspect ratio or image size)",
            )


def _inline(part: Any) -> GeneratedImage | None:
    data = part.get("inlineData") if isinstance(part, Mapping) else None
    if not isinstance(data, Mapping):
        return None
    try:
        payload = base64.b64decode(str(data.get("data", "")), validate=True)
    except ValueError:
        raise ServerError("an inlineData image is not valid base64") from None
    return GeneratedImage(data=payload, media_type=str(data.get("mimeType") or "image/png"))


def _image_usage(meta: Mapping[str, Any] | None) -> Usage:
    usage = usage_from_metadata(meta)
    for key, attr in (("promptTokensDetails", "input_image_tokens"),
                      ("candidatesTokensDetails", "output_image_tokens")):
        details = (meta or {}).get(key)
        if isinstance(details, list):
            count = sum(
                int(d.get("tokenCount") or 0) for d in details
                if isinstance(d, Mapping) and d.get("modality") == "IMAGE"
            )
            setattr(usage, attr, count)
    return usage


@dataclass(frozen=True, slots=True)
class GeminiImageDialect:
    name: str = "gemini_images"

    def exchanges(self, request: ImageRequest, model: str) -> list[Exchange]:
        _refuse(request, "quality", "output_format")
        name = model.removeprefix("models/")
        parts: list[dict[str, Any]] = [{"text": request.prompt}]
        for image in request.images:
            if image.data is None:
                raise InvalidRequestError("image", "Gemini edits take image bytes, not URLs")
            parts.append({"inlineData": {"mimeType": image.media_type or "image/png",
                                         "data": image.base64}})
        config: dict[str, Any] = {"responseModalities": ["IMAGE"]}
        shape = image_config(request.size)
        if shape:
            config["imageConfig"] = shape
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": parts}], "generationConfig": config,
        }
        body.update(request.extra)
        http = HttpRequest(f"/models/{name}:generateContent", body, dict(request.extra_headers))
        return [Exchange(http, count=1) for _ in range(request.n)]

    def parse_response(
        self, body: Mapping[str, Any], exchange: Exchange, request: ImageRequest, model: str
    ) -> ImageResponse:
        raise_for_payload(body)
        images: list[GeneratedImage] = []
        text: list[str] = []
        for candidate in body.get("candidates") or []:
            content = candidate.get("content") if isinstance(candidate, Mapping) else None
            for part in (content or {}).get("parts") or []:
                image = _inline(part)
                if image is not None:
                    images.append(image)
                elif isinstance(part, Mapping) and isinstance(part.get("text"), str) \
                        and not part.get("thought"):
                    text.append(part["text"])
        return ImageResponse(
            images=images, model=str(body.get("modelVersion") or model.removeprefix("models/")),
            provider="", usage=_image_usage(body.get("usageMetadata")), size=request.size,
            text="".join(text),
        )

    def parse_error(
        self, status: int, body: bytes | str, headers: Mapping[str, str]
    ) -> ProviderError:
        return parse_error(status, body, headers)


@dataclass(frozen=True, slots=True)
class ImagenDialect:
    name: str = "imagen"

    def exchanges(self, request: ImageRequest, model: str) -> list[Exchange]:
        _refuse(request, "quality")
        if request.is_edit:
            raise InvalidRequestError(
                "image", "Imagen generates from a prompt only here; edit with a Gemini image "
                "model (gemini-2.5-flash-image) or OpenAI's gpt-image",
            )
        parameters: dict[str, Any] = {"sampleCount": request.n}
        shape = image_config(request.size)
        if "aspectRatio" in shape:
            parameters["aspectRatio"] = shape["aspectRatio"]
        if "imageSize" in shape:
            parameters["sampleImageSize"] = shape["imageSize"]
        if request.output_format is not None:
            fmt = _IMAGEN_FORMATS.get(request.output_format.lower())
            if fmt is None:
                raise InvalidRequestError(
                    "output_format", f"Imagen writes png or jpeg; got {request.output_format!r}"
                )
            parameters["outputOptions"] = {"mimeType": fmt}
        parameters.update(request.extra)
        body = {"instances": [{"prompt": request.prompt}], "parameters": parameters}
        name = model.removeprefix("models/")
        http = HttpRequest(f"/models/{name}:predict", body, dict(request.extra_headers))
        return [Exchange(http, count=request.n)]

    def parse_response(
        self, body: Mapping[str, Any], exchange: Exchange, request: ImageRequest, model: str
    ) -> ImageResponse:
        predictions = body.get("predictions")
        if not isinstance(predictions, list):
            raise ServerError("an Imagen answer has no 'predictions' list")
        images = []
        for item in predictions:
            raw = item.get("bytesBase64Encoded") if isinstance(item, Mapping) else None
            if not isinstance(raw, str):
                continue  # a prediction filtered by safety settings carries no image
            try:
                data = base64.b64decode(raw, validate=True)
            except ValueError:
                raise ServerError("an Imagen image is not valid base64") from None
            images.append(GeneratedImage(
                data=data, media_type=str(item.get("mimeType") or "image/png"),
                revised_prompt=item.get("prompt"),
            ))
        usage = Usage(units={image_unit(request.size, None): len(images)} if images else {})
        return ImageResponse(
            images=images, model=model.removeprefix("models/"), provider="", usage=usage,
            size=request.size,
        )

    def parse_error(
        self, status: int, body: bytes | str, headers: Mapping[str, str]
    ) -> ProviderError:
        return parse_error(status, body, headers)
