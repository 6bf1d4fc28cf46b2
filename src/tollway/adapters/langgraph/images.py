"""Image generation as a LangChain tool (LangGraph agents, ``create_agent``).

::

    draw = image_tool("images", size="1024x1024", quality="low", output_dir="out/")
    agent = create_agent(TollwayChatModel(model="smart"), tools=[draw])

The tool takes one argument, the prompt; everything that sets the price is fixed when
the tool is built. It is a ``StructuredTool`` with ``response_format=
"content_and_artifact"``: the model reads where each image is (a file in ``output_dir``,
the provider's URL, or "kept by the application"), and the ToolMessage's ``artifact``
is the tollway ImageResponse (bytes, URLs, usage, cost) for the program. Each call is
metered like any call, attributed to the graph node that ran the tool. A prompt the
provider refuses raises ``ToolException``, which LangChain hands back to the model
(``handle_tool_error``); budget and hours denials stop the run unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.tools import StructuredTool, ToolException

from tollway.adapters._images import (
    DEFAULT_DESCRIPTION,
    DEFAULT_NAME,
    ImagePrompt,
    ImageSpec,
    is_tool_failure,
)
from tollway.adapters.langgraph.context import run_scope
from tollway.core.media_types import ImageResponse
from tollway.core.model import Model

__all__ = ["image_tool"]


def image_tool(
    model: str | Model,
    *,
    name: str = DEFAULT_NAME,
    description: str = DEFAULT_DESCRIPTION,
    handle_tool_error: Any = True,
    **options: Any,
) -> StructuredTool:
    """A tool generating images on ``model``; ``options`` are
    :meth:`tollway.adapters._images.ImageSpec.of`'s (size, quality, n, output_format,
    output_dir, params, org / project / user / tags, and the Model's own options)."""
    spec = ImageSpec.of(model, **options)
    defaults = spec.defaults

    def answer(response: ImageResponse) -> tuple[str, ImageResponse]:
        return spec.describe(response, spec.keep(response)), response

    def draw(prompt: str) -> tuple[str, ImageResponse]:
        with run_scope(defaults), _failures_for_the_model():
            return answer(spec.generate(prompt))

    async def adraw(prompt: str) -> tuple[str, ImageResponse]:
        with run_scope(defaults), _failures_for_the_model():
            return answer(await spec.agenerate(prompt))

    return StructuredTool(
        name=name, description=description, args_schema=ImagePrompt, func=draw,
        coroutine=adraw, response_format="content_and_artifact",
        handle_tool_error=handle_tool_error, metadata={"tollway_model": spec.client.target},
    )


@contextmanager
def _failures_for_the_model() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if is_tool_failure(exc):
            raise ToolException(f"the image could not be generated: {exc}") from exc
        raise
