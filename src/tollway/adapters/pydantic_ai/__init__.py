"""Pydantic AI adapter: :class:`TollwayModel`, a ``pydantic_ai.models.Model`` whose
requests are routed, priced, budget-checked and attributed to the agent that made them.
Importing this package imports pydantic-ai (install ``tollway[pydantic-ai]``)."""

from tollway.adapters.pydantic_ai.model import TollwayModel
from tollway.adapters.pydantic_ai.stream import TollwayStreamedResponse

__all__ = ["TollwayModel", "TollwayStreamedResponse"]
