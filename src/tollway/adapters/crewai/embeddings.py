"""tollway as CrewAI's embedder, for knowledge and memory.

::

    crew = Crew(agents=[...], tasks=[...], knowledge_sources=[StringKnowledgeSource(...)],
                embedder=TollwayEmbedder(model="embed"))      # an alias from tollway.yaml
    Agent(..., knowledge_sources=[...], embedder=TollwayEmbedder(model="embed"))
    Memory(embedder=TollwayEmbeddingFunction("embed"), llm=TollwayLLM("fast"))

:class:`TollwayEmbedder` is a CrewAI embeddings provider (``crewai.rag`` builds its
embedding function from it), so it goes wherever CrewAI takes an ``embedder``; the
dictionary form works too: ``{"provider": "custom", "config": {"embedding_callable":
TollwayEmbeddingFunction, "model": "embed"}}``. :class:`TollwayEmbeddingFunction` is
the embedding function itself (a CrewAI custom embedding function speaking chromadb's
protocol, which CrewAI's knowledge store calls), for ``Memory(embedder=...)``. Memory
saves run on CrewAI's own thread, outside any ``tollway.attribute`` scope: give the
function ``user=`` / ``project=`` to attribute them.

Every embedding call is routed, priced, budget-checked and written to the ledger (kind
``embedding``) attributed to the agent and task it serves: knowledge added for an agent
is attributed to that agent, a knowledge query to the agent executing its task, crew
knowledge embedded when the crew is built to the crew. Knowledge stores embed
documents with input type ``document`` and queries with ``query``; CrewAI's memory asks
for both through one call, so memory embeds everything as documents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from crewai.rag.core.base_embeddings_provider import BaseEmbeddingsProvider
from crewai.rag.embeddings.providers.custom.embedding_callable import CustomEmbeddingFunction
from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tollway.adapters._client import connect
from tollway.adapters.crewai._errors import translate
from tollway.adapters.crewai._scope import crewai_scope
from tollway.core.cost.attribution import Attribution, attribute, current_attribution
from tollway.core.errors import TollwayError
from tollway.core.model import Model

__all__ = ["TollwayEmbedder", "TollwayEmbeddingFunction"]


class TollwayEmbeddingFunction(CustomEmbeddingFunction, EmbeddingFunction[Documents]):
    """Texts -> vectors through ``tollway.Model``: ``TollwayEmbeddingFunction("embed")``
    (an alias or ``provider/model``) or ``TollwayEmbeddingFunction(client=Model(...))``.
    ``org`` / ``project`` / ``user`` / ``tags`` are recorded with every call (an
    enclosing ``tollway.attribute(...)`` scope overrides them); ``dimensions`` shortens
    the vectors where the model allows it; other keywords build the Model
    (``api_key``, ``api_base``, ``ledger``, ``guards``, ``prices``, ``config``...)."""

    def __init__(
        self,
        model: str | None = None,
        *,
        client: Model | None = None,
        dimensions: int | None = None,
        org: str | None = None,
        project: str | None = None,
        user: str | None = None,
        tags: Mapping[str, str] | Sequence[str] | None = None,
        guards: Sequence[Any] = (),
        **client_options: Any,
    ) -> None:
        self.client = connect("TollwayEmbeddingFunction", model, client, client_options,
                              guards=guards or ())
        self.dimensions = dimensions
        self._defaults = Attribution.of(org=org, project=project, user=user, tags=tags)

    @staticmethod
    def name() -> str:
        """Not a named chromadb function on purpose ("legacy"): chromadb would persist its
        config and rebuild it when a collection is read back, but a tollway Model holds
        live state (keys, ledger, guards) that no config can carry; CrewAI passes this
        function to every collection call anyway."""
        return NotImplemented

    def __call__(self, input: Documents) -> Embeddings:
        return self._embed(input, "document")

    def embed_query(self, input: Documents) -> Embeddings:
        return self._embed(input, "query")

    def _embed(self, texts: Documents, input_type: str) -> Embeddings:
        texts = [texts] if isinstance(texts, str) else list(texts)
        scope = self._defaults.merge(current_attribution()).merge(crewai_scope(None, None))
        try:
            with attribute(scope):
                response = self.client.embed(texts, dimensions=self.dimensions,
                                             input_type=input_type)
        except TollwayError as exc:
            crewai_error = translate(exc)
            if crewai_error is None:
                raise
            raise crewai_error from exc
        return [np.asarray(vector, dtype=np.float32) for vector in response.vectors]


class TollwayEmbedder(BaseEmbeddingsProvider[TollwayEmbeddingFunction]):
    """A CrewAI embeddings provider over tollway: ``Crew(embedder=TollwayEmbedder(
    model="embed"))``. Its fields are TollwayEmbeddingFunction's; only the arguments
    given count (no environment variables are read: tollway.yaml and the Model's own
    key variables configure the provider)."""

    model_config = SettingsConfigDict(extra="allow", arbitrary_types_allowed=True)

    embedding_callable: type[TollwayEmbeddingFunction] = Field(default=TollwayEmbeddingFunction)
    model: str | None = None
    """An alias from tollway.yaml or ``provider/model``."""
    client: Any = None
    """A ready tollway.Model (then ``model`` and the connection options are ignored)."""
    dimensions: int | None = None
    org: str | None = None
    project: str | None = None
    user: str | None = None
    tags: dict[str, str] | list[str] | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments only: a settings class would otherwise fill ``user`` from ``$USER``."""
        return (init_settings,)
