"""Pydantic AI adapter: :class:`TollwayModel`, a ``pydantic_ai.models.Model`` whose
requests are routed, priced, budget-checked and attributed to the agent that made them;
:class:`TollwayEmbeddingModel` for ``Embedder`` and :class:`TollwayImageGenerationModel`
for ``ImageGenerator`` and the ``ImageGeneration`` capability, metered the same way.
Importing this package imports pydantic-ai (install ``tollway[pydantic-ai]``)."""

from tollway.adapters.pydantic_ai.embeddings import TollwayEmbeddingModel
from tollway.adapters.pydantic_ai.images import (
    TollwayImageGenerationModel,
    TollwayImageGenerationSettings,
)
from tollway.adapters.pydantic_ai.model import TollwayModel
from tollway.adapters.pydantic_ai.stream import TollwayStreamedResponse

__all__ = [
    "TollwayEmbeddingModel",
    "TollwayImageGenerationModel",
    "TollwayImageGenerationSettings",
    "TollwayModel",
    "TollwayStreamedResponse",
]
