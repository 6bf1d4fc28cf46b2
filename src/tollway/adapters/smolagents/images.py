"""Image generation as a smolagents tool.

::

    draw = TollwayImageTool("images", size="1024x1024", quality="low")
    agent = ToolCallingAgent(tools=[draw], model=TollwayModel("smart"), name="designer")
    picture = agent.run("Draw a lighthouse at dusk and return it")   # an AgentImage

The tool takes one argument, the prompt; everything that sets the price is fixed when
the tool is built. Its output type is smolagents' ``image``: the first image comes back
as a PIL image (smolagents wraps it as an ``AgentImage``, keeps it in the agent's state
as ``image.png`` and tells the model so, and ``final_answer("image.png")`` returns it).
With ``output_dir`` every image is also written there; every ImageResponse (all ``n``
images, usage, cost) is in ``tool.responses``. Each call is metered like any call,
attributed to the agent that ran the tool. A failure raises, and smolagents reports it
to the model as a tool error.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

import PIL.Image
from smolagents import Tool

from tollway.adapters._images import DEFAULT_DESCRIPTION, DEFAULT_NAME, ImageSpec
from tollway.adapters.smolagents._agent import agent_name, calling_agent
from tollway.core.cost.attribution import Attribution, attribute, current_attribution
from tollway.core.errors import TollwayError
from tollway.core.media_types import ImageResponse
from tollway.core.model import Model

__all__ = ["ImageToolError", "TollwayImageTool"]


class ImageToolError(TollwayError):
    """The image model answered without an image the agent can hold (a URL only)."""


class TollwayImageTool(Tool):
    """``TollwayImageTool("images", quality="low")``; the options are
    :meth:`tollway.adapters._images.ImageSpec.of`'s (size, quality, n, output_format,
    output_dir, params, org / project / user / tags, and the Model's own options).
    ``agent`` names the ledger's agent (by default the calling agent's ``name``)."""

    skip_forward_signature_validation = True
    output_type = "image"

    def __init__(self, model: str | Model, *, agent: str | None = None,
                 name: str = DEFAULT_NAME, description: str = DEFAULT_DESCRIPTION,
                 **options: Any) -> None:
        self.name = name
        self.description = description
        self.inputs = {"prompt": {"type": "string", "description": "What the image shows, in full."}}
        self.spec = ImageSpec.of(model, **options)
        self.agent_name = agent
        self.responses: list[ImageResponse] = []
        super().__init__()

    def forward(self, prompt: str) -> PIL.Image.Image:
        here = Attribution.of(framework="smolagents",
                              agent=self.agent_name or agent_name(calling_agent()))
        with attribute(self.spec.defaults.merge(current_attribution()).merge(here)):
            response = self.spec.generate(prompt)
        self.responses.append(response)
        self.spec.keep(response)
        image = response.image
        if image.data is None:
            raise ImageToolError(
                f"{response.model} answered with a URL only ({image.url}); ask for bytes "
                "(params={'response_format': 'b64_json'} on dall-e models)"
            )
        return PIL.Image.open(BytesIO(image.data))
