"""Image generation as a CrewAI tool.

::

    draw = TollwayImageTool("images", size="1024x1024", quality="low", output_dir="out/")
    designer = Agent(role="Designer", ..., llm=TollwayLLM("smart"), tools=[draw])

The tool takes one argument, the prompt; everything that sets the price is fixed when
the tool is built. CrewAI tools answer with text, so the agent reads where each image
is (a file in ``output_dir``, the provider's URL, or "kept by the application"), and
the program finds every ImageResponse (bytes, URLs, usage, cost) in ``tool.responses``.
Each call is metered like any call and attributed to the agent and task that ran the
tool. A prompt the provider refuses comes back as CrewAI's ``ToolFailure`` (the agent
sees the message; ``tool_failure_policy`` decides); a budget or hours denial stops
the task the way a denied model call does.
"""

from __future__ import annotations

from typing import Any

from crewai.tools import BaseTool
from crewai.tools.tool_failure import ToolFailure, ToolFailureReason
from pydantic import PrivateAttr

from tollway.adapters._images import (
    DEFAULT_DESCRIPTION,
    DEFAULT_NAME,
    ImagePrompt,
    ImageSpec,
    is_tool_failure,
)
from tollway.adapters.crewai._errors import translate
from tollway.adapters.crewai._scope import crewai_scope
from tollway.core.cost.attribution import Attribution, attribute, current_attribution
from tollway.core.errors import TollwayError
from tollway.core.media_types import ImageResponse
from tollway.core.model import Model

__all__ = ["TollwayImageTool"]


class TollwayImageTool(BaseTool):
    """``TollwayImageTool("images", quality="low")``; the options are
    :meth:`tollway.adapters._images.ImageSpec.of`'s (size, quality, n, output_format,
    output_dir, params, org / project / user / tags, and the Model's own options)."""

    name: str = DEFAULT_NAME
    description: str = DEFAULT_DESCRIPTION
    args_schema: type[ImagePrompt] = ImagePrompt

    _spec: ImageSpec = PrivateAttr()
    _responses: list[ImageResponse] = PrivateAttr(default_factory=list)

    def __init__(self, model: str | Model, *, name: str = DEFAULT_NAME,
                 description: str = DEFAULT_DESCRIPTION, **options: Any) -> None:
        super().__init__(name=name, description=description)
        self._spec = ImageSpec.of(model, **options)

    @property
    def responses(self) -> list[ImageResponse]:
        """Every ImageResponse this tool received, oldest first."""
        return self._responses

    def _scope(self) -> Attribution:
        return self._spec.defaults.merge(current_attribution()).merge(crewai_scope(None, None))

    def _answer(self, response: ImageResponse) -> str:
        self._responses.append(response)
        return self._spec.describe(response, self._spec.keep(response))

    def _run(self, prompt: str) -> Any:
        try:
            with attribute(self._scope()):
                return self._answer(self._spec.generate(prompt))
        except TollwayError as exc:
            return _failure(exc)

    async def _arun(self, prompt: str) -> Any:
        try:
            with attribute(self._scope()):
                return self._answer(await self._spec.agenerate(prompt))
        except TollwayError as exc:
            return _failure(exc)


def _failure(exc: TollwayError) -> ToolFailure:
    """A ToolFailure for an image the provider would not make; anything else raised
    (a denial as CrewAI's HookAborted kind, see ``_errors``)."""
    if not is_tool_failure(exc):
        crewai_error = translate(exc)
        if crewai_error is None:
            raise exc
        raise crewai_error from exc
    return ToolFailure(
        message=f"the image could not be generated: {exc}",
        reason=ToolFailureReason.TOOL_REPORTED,
        code=str(getattr(exc, "status", None) or type(exc).__name__),
        retryable=False,
    )
