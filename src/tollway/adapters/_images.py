"""What every framework's image tool shares: the image call it makes, where the images
go, and what the agent's model is told about them.

An image tool is built with everything that decides the price (model, size, quality,
n, output format), so the model calling it chooses only the prompt and a budget can
reserve the dearest case before the call. The call itself is ``Model.generate_image``:
routed, priced, budget-checked and written to the ledger (kind ``image``) like any
call, attributed to whatever scope the framework adapter opened around it.

The images never go back into the conversation as bytes (a few megabytes of base64
would be billed as input tokens on the next turn): the model is told where each image
is, a file in ``output_dir`` when one is given, the provider's URL, or "kept by the
application" (each framework's tool hands the ImageResponse to the program natively).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tollway.core.cost.attribution import Attribution
from tollway.core.errors import (
    AllDeploymentsFailedError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
)
from tollway.core.media_types import GeneratedImage, ImageResponse
from tollway.core.model import Model

__all__ = ["DEFAULT_DESCRIPTION", "DEFAULT_NAME", "ImagePrompt", "ImageSpec", "is_tool_failure"]

DEFAULT_NAME = "generate_image"
DEFAULT_DESCRIPTION = (
    "Generate an image from a text description. Give the full description of the "
    "picture as the prompt; the answer says where the image is."
)
_SETUP_ERRORS = (AuthenticationError, PermissionDeniedError, NotFoundError)
"""Provider errors that say the set-up is wrong, not the prompt: nothing the model can fix."""
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


class ImagePrompt(BaseModel):
    """The image tool's one argument (frameworks that validate arguments with pydantic)."""

    prompt: str = Field(min_length=1, description="What the image shows, in full.")


@dataclass(frozen=True)
class ImageSpec:
    """One image tool's fixed settings, its Model and the attribution it records."""

    client: Model
    size: str | None = None
    quality: str | None = None
    n: int = 1
    output_format: str | None = None
    output_dir: Path | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    defaults: Attribution = field(default_factory=Attribution)

    @classmethod
    def of(
        cls,
        model: str | Model,
        *,
        size: str | None = None,
        quality: str | None = None,
        n: int = 1,
        output_format: str | None = None,
        output_dir: str | Path | None = None,
        params: Mapping[str, Any] | None = None,
        org: str | None = None,
        project: str | None = None,
        user: str | None = None,
        tags: Mapping[str, str] | Sequence[str] | None = None,
        **client_options: Any,
    ) -> ImageSpec:
        """The options every framework's image tool takes: ``model`` (an alias,
        ``provider/model`` or a tollway.Model; ``client_options`` such as ``api_key``,
        ``ledger``, ``guards`` build the Model from a name); ``size`` / ``quality`` /
        ``n`` / ``output_format`` fixed for every call; ``output_dir`` to write the
        images into; ``params`` sent to the provider untouched (``background``,
        ``style``, ``response_format``...); ``org`` / ``project`` / ``user`` / ``tags``
        recorded with every call (an enclosing ``tollway.attribute(...)`` wins)."""
        client = model if isinstance(model, Model) else Model(model, **client_options)
        return cls(client, size, quality, n, output_format,
                   Path(output_dir) if output_dir is not None else None, dict(params or {}),
                   Attribution.of(org=org, project=project, user=user, tags=tags))

    def _options(self) -> dict[str, Any]:
        return {"size": self.size, "quality": self.quality, "n": self.n,
                "output_format": self.output_format, **self.params}

    def generate(self, prompt: str) -> ImageResponse:
        return self.client.generate_image(prompt, **self._options())

    async def agenerate(self, prompt: str) -> ImageResponse:
        return await self.client.agenerate_image(prompt, **self._options())

    def keep(self, response: ImageResponse) -> list[Path | None]:
        """Write each image that came as bytes into ``output_dir`` (when set), named by
        the call's trace id; None for an image not written."""
        if self.output_dir is None:
            return [None] * len(response.images)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        stem = response.trace_id or uuid.uuid4().hex
        paths: list[Path | None] = []
        for number, image in enumerate(response.images, 1):
            if image.data is None:
                paths.append(None)
                continue
            ext = _EXTENSIONS.get(image.media_type, "bin")
            paths.append(image.save(self.output_dir / f"{stem}-{number}.{ext}"))
        return paths

    def describe(self, response: ImageResponse, paths: list[Path | None]) -> str:
        """The tool result the agent's model reads: one line per image, where it is."""
        count = len(response.images)
        lines = [f"Generated {count} image{'s' if count != 1 else ''} with {response.model}."]
        for number, (image, path) in enumerate(zip(response.images, paths, strict=True), 1):
            lines.append(f"image {number}: {_where(image, path)}")
            if image.revised_prompt:
                lines.append(f"  revised prompt: {image.revised_prompt}")
        if response.text:
            lines.append(f"the image model said: {response.text}")
        return "\n".join(lines)


def _where(image: GeneratedImage, path: Path | None) -> str:
    if path is not None:
        return f"saved to {path} ({image.media_type})"
    if image.data is None and image.url:
        return f"{image.url} ({image.media_type})"
    return f"{image.media_type}, {len(image.data or b'')} bytes, kept by the application"


def is_tool_failure(exc: BaseException) -> bool:
    """True for an image the provider would not or could not make (a refused prompt, a
    content filter, every deployment failing or cooling down): the agent's model is told
    and may rephrase or move on. A budget or hours denial, a configuration error and a
    rejected key or unknown model are not: they stop the run like a failed chat call."""
    if isinstance(exc, AllDeploymentsFailedError):
        if exc.last_error is None:
            return True
        exc = exc.last_error
    return isinstance(exc, ProviderError) and not isinstance(exc, _SETUP_ERRORS)
