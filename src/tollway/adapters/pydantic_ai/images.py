"""TollwayImageGenerationModel: a Pydantic AI ``ImageGenerationModel`` over tollway.

Two native uses::

    generator = ImageGenerator(TollwayImageGenerationModel("images", quality="low"))
    result = await generator.generate("A lighthouse at dusk")   # result.image: BinaryImage

    agent = Agent(TollwayModel("smart"), capabilities=[
        ImageGeneration(fallback_image_model=TollwayImageGenerationModel("images"))])

With the ``ImageGeneration`` capability the agent gets Pydantic AI's own
``generate_image`` tool (TollwayModel has no native image tool, so the capability
always uses this model); the image comes back to the agent as a ``BinaryImage`` in
the tool's return. Every call is routed, priced, budget-checked and written to the
ledger (kind ``image``) with the agent name and run id.

Settings: the portable ``dimensions`` become the size (``"1024x1536"``);
``aspect_ratio`` has no tollway equivalent (providers name sizes differently) and is
refused with a ``UserError``. ``tollway_size`` / ``tollway_quality`` / ``tollway_n`` /
``tollway_output_format`` override the model's defaults; ``extra_headers`` and
``extra_body`` are sent. Reference images (``images=[...]``) make the call an edit.
A content filter raises Pydantic AI's ``ContentFilterError``, other provider failures
its ``ModelAPIError`` family; budget and hours denials pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic_ai.exceptions import ContentFilterError, UnexpectedModelBehavior, UserError
from pydantic_ai.images import (
    GeneratedImage,
    ImageGenerationInput,
    ImageGenerationModel,
    ImageGenerationResult,
    ImageGenerationSettings,
)
from pydantic_ai.messages import BinaryImage, ImageUrl
from pydantic_ai.models import check_allow_model_requests
from pydantic_ai.usage import RequestUsage

import tollway.core.model as core_model
from tollway.adapters.pydantic_ai.client import TollwayClient
from tollway.adapters.pydantic_ai.errors import mapped_errors
from tollway.adapters.pydantic_ai.run import run_scope
from tollway.core import errors
from tollway.core.media_types import ImageResponse
from tollway.core.types import Image

__all__ = ["TollwayImageGenerationModel", "TollwayImageGenerationSettings"]


class TollwayImageGenerationSettings(ImageGenerationSettings, total=False):
    """The portable settings plus tollway's own (prefixed, as Pydantic AI asks)."""

    tollway_size: str
    """The provider's size name (``"1024x1024"``, ``"auto"``...)."""
    tollway_quality: str
    """``"low"`` / ``"medium"`` / ``"high"`` (gpt-image), ``"standard"`` / ``"hd"`` (dall-e)."""
    tollway_n: int
    tollway_output_format: str
    """``"png"``, ``"jpeg"`` or ``"webp"``."""


class TollwayImageGenerationModel(TollwayClient, ImageGenerationModel):
    """``TollwayImageGenerationModel("images")`` (an alias from tollway.yaml),
    ``TollwayImageGenerationModel("openai/gpt-image-1", quality="low", api_key=...)``,
    or ``TollwayImageGenerationModel(client=tollway.Model(...))``. ``size`` /
    ``quality`` / ``n`` / ``output_format`` are the defaults of every call; ``params``
    go to the provider untouched; the other options (attribution, ``api_key``,
    ``ledger``...) are TollwayModel's (see :mod:`.client`)."""

    __eq__ = object.__eq__  # a facade over a live Model compares by identity
    __hash__ = object.__hash__

    def __init__(
        self,
        model: str | None = None,
        *,
        client: core_model.Model | None = None,
        size: str | None = None,
        quality: str | None = None,
        n: int = 1,
        output_format: str | None = None,
        params: Mapping[str, Any] | None = None,
        settings: TollwayImageGenerationSettings | None = None,
        **options: Any,
    ) -> None:
        self._connect("TollwayImageGenerationModel", model, client, options)
        self._options: dict[str, Any] = {"size": size, "quality": quality, "n": n,
                                         "output_format": output_format, **(params or {})}
        super().__init__(settings=settings)

    async def generate(
        self,
        prompt: str,
        *,
        images: Sequence[ImageGenerationInput] | None = None,
        settings: ImageGenerationSettings | None = None,
    ) -> ImageGenerationResult:
        check_allow_model_requests()
        prompt, references, merged = self.prepare_generate(prompt, images=images, settings=settings)
        options = self._call_options(merged)
        with run_scope(None, self._defaults), mapped_errors(self._target), _content_filter():
            if references:
                response = await self._client.aedit_image(
                    [_reference(item) for item in references], prompt, **options)
            else:
                response = await self._client.agenerate_image(prompt, **options)
        return _result(response, prompt, self.base_url)

    def _call_options(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        if settings.get("aspect_ratio") is not None:
            raise UserError(
                "TollwayImageGenerationModel does not take aspect_ratio (each provider names "
                "its sizes differently): give dimensions=(width, height) or "
                "tollway_size='<the provider's size name>'"
            )
        options = dict(self._options)
        dimensions = settings.get("dimensions")
        if dimensions is not None:
            options["size"] = f"{dimensions[0]}x{dimensions[1]}"
        for name in ("size", "quality", "n", "output_format"):
            if settings.get(f"tollway_{name}") is not None:
                options[name] = settings[f"tollway_{name}"]
        if settings.get("extra_headers"):
            options["extra_headers"] = settings["extra_headers"]
        body = settings.get("extra_body")
        if isinstance(body, Mapping):
            options.update(body)
        return options


@contextmanager
def _content_filter() -> Iterator[None]:
    """tollway's ContentFilterError as Pydantic AI's (the ImageGeneration capability
    turns that into a retry, so the model may rephrase the prompt)."""
    try:
        yield
    except errors.TollwayError as exc:
        root = exc.last_error if isinstance(exc, errors.AllDeploymentsFailedError) else exc
        if isinstance(root, errors.ContentFilterError):
            raise ContentFilterError(str(exc)) from exc
        raise


def _reference(item: ImageGenerationInput) -> Image:
    if isinstance(item, BinaryImage):
        return Image(data=item.data, media_type=item.media_type)
    if isinstance(item, ImageUrl):
        return Image(url=item.url, media_type=item.media_type)
    raise UserError(
        "TollwayImageGenerationModel takes reference images as BinaryImage or ImageUrl, "
        f"not {type(item).__name__}"
    )


def _result(response: ImageResponse, prompt: str, url: str | None) -> ImageGenerationResult:
    images: list[GeneratedImage] = []
    for image in response.images:
        if image.data is None:
            raise UnexpectedModelBehavior(
                f"{response.model} answered with an image URL only; ask for bytes "
                "(params={'response_format': 'b64_json'} on dall-e models)"
            )
        images.append(GeneratedImage(
            content=BinaryImage(data=image.data, media_type=image.media_type),
            revised_prompt=image.revised_prompt,
            output_format=image.media_type.removeprefix("image/"),
        ))
    if not images:
        raise UnexpectedModelBehavior(f"{response.model} returned no image")
    usage = response.usage
    return ImageGenerationResult(
        images=images,
        prompt=prompt,
        model_name=response.model,
        provider_name=response.provider,
        usage=RequestUsage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens),
        provider_details={"cost_usd": response.cost, "cost_nanos": response.cost_nanos,
                          "deployment": response.deployment, "trace_id": response.trace_id},
        provider_url=url,
    )
