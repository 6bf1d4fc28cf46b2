"""CrewAI adapter: :class:`TollwayLLM`, a native ``crewai.BaseLLM`` over ``tollway.Model``.

::

    from crewai import Agent
    from tollway.adapters.crewai import TollwayLLM

    researcher = Agent(role="Researcher", goal=..., backstory=...,
                       llm=TollwayLLM("cheap"))          # an alias from tollway.yaml
    writer = Agent(role="Writer", goal=..., backstory=...,
                   llm=TollwayLLM("anthropic/claude-sonnet-4-5", project="blog"))

Every call is priced, checked against budgets and written to the ledger with the agent
role and task name (``tollway spend --group-by agent``). Give a TollwayLLM to every
place CrewAI takes an LLM (``Agent(llm=..., function_calling_llm=...)``,
``Crew(planning_llm=..., manager_llm=...)``): any place left unset falls back to
CrewAI's default, an OpenAI model called outside tollway (unmetered, unbudgeted).

Knowledge and memory embed through :class:`TollwayEmbedder` (``Crew(embedder=...)``),
and :class:`TollwayImageTool` gives an agent image generation, metered the same way.

Importing this package imports CrewAI (several seconds); ``import tollway`` does not.
"""

from tollway.adapters.crewai.embeddings import TollwayEmbedder, TollwayEmbeddingFunction
from tollway.adapters.crewai.images import TollwayImageTool
from tollway.adapters.crewai.llm import TollwayLLM

__all__ = ["TollwayEmbedder", "TollwayEmbeddingFunction", "TollwayImageTool", "TollwayLLM"]
