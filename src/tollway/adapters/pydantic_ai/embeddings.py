"""TollwayEmbeddingModel: a Pydantic AI ``EmbeddingModel`` whose calls go through a
tollway Model.

``Embedder(TollwayEmbeddingModel("embed"))`` embeds queries and documents through any
provider tollway speaks, routed, priced, budget-checked and written to the ledger (kind
``embedding``), with the agent name and run id when an agent's tool embeds. Pydantic
AI's ``input_type`` reaches the provider as tollway's hint (Gemini and Vertex embed
queries and documents differently); ``dimensions``, ``extra_headers`` and
``extra_body`` from the settings are sent. Provider failures are raised as Pydantic
AI's ``ModelAPIError`` family, budget and hours denials unchanged (see :mod:`.errors`).
The tollway cost, deployment and trace id of each call are in the result's
``provider_details``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic_ai.embeddings import EmbeddingModel, EmbeddingResult, EmbeddingSettings
from pydantic_ai.embeddings.result import EmbedInputType
from pydantic_ai.models import check_allow_model_requests
from pydantic_ai.usage import RequestUsage

import tollway.core.model as core_model
from tollway.adapters.pydantic_ai.client import TollwayClient
from tollway.adapters.pydantic_ai.errors import mapped_errors
from tollway.adapters.pydantic_ai.run import run_scope
from tollway.core.media_types import EmbeddingResponse

__all__ = ["TollwayEmbeddingModel"]


class TollwayEmbeddingModel(TollwayClient, EmbeddingModel):
    """``TollwayEmbeddingModel("embed")`` (an alias from tollway.yaml),
    ``TollwayEmbeddingModel("gemini/gemini-embedding-001", api_key=...)``, or
    ``TollwayEmbeddingModel(client=tollway.Model(...))``; the options (attribution,
    ``api_key``, ``ledger``...) are TollwayModel's (see :mod:`.client`)."""

    __eq__ = object.__eq__  # a facade over a live Model compares by identity
    __hash__ = object.__hash__

    def __init__(
        self,
        model: str | None = None,
        *,
        client: core_model.Model | None = None,
        settings: EmbeddingSettings | None = None,
        **options: Any,
    ) -> None:
        self._connect("TollwayEmbeddingModel", model, client, options)
        super().__init__(settings=settings)

    async def embed(
        self, inputs: str | Sequence[str], *, input_type: EmbedInputType,
        settings: EmbeddingSettings | None = None,
    ) -> EmbeddingResult:
        check_allow_model_requests()
        texts, merged = self.prepare_embed(inputs, settings)
        params: dict[str, Any] = {"dimensions": merged.get("dimensions"), "input_type": input_type}
        if merged.get("extra_headers"):
            params["extra_headers"] = merged["extra_headers"]
        body = merged.get("extra_body")
        if isinstance(body, Mapping):
            params.update(body)
        with run_scope(None, self._defaults), mapped_errors(self._target):
            response = await self._client.aembed(texts, **params)
        return EmbeddingResult(
            embeddings=response.vectors,
            inputs=texts,
            input_type=input_type,
            model_name=response.model,
            provider_name=response.provider,
            usage=RequestUsage(input_tokens=response.usage.input_tokens),
            provider_details=_details(response),
        )


def _details(response: EmbeddingResponse) -> dict[str, Any]:
    """What tollway knows about the call beyond Pydantic AI's fields."""
    return {
        "cost_usd": response.cost,
        "cost_nanos": response.cost_nanos,
        "deployment": response.deployment,
        "trace_id": response.trace_id,
        "usage_estimated": response.usage_estimated,
    }
