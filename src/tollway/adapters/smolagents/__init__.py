"""smolagents adapter: :class:`TollwayModel`, a native ``smolagents.Model`` over
``tollway.Model``.

::

    from smolagents import CodeAgent, ToolCallingAgent
    from tollway.adapters.smolagents import TollwayModel

    agent = ToolCallingAgent(tools=[...], model=TollwayModel("smart"), name="researcher")

Every call is priced, checked against budgets and written to the ledger with the
calling agent's name; :class:`TollwayImageTool` gives an agent image generation,
metered the same way. Token usage is exact, streamed or not: ``input_tokens`` counts
every billed input token (cache reads and writes included, as providers bill them) and
a stream reports its usage once; the cache and reasoning subsets are on the returned
``ChatMessage.token_usage`` (a :class:`TollwayTokenUsage`) and the full Response, cost
included, is ``ChatMessage.raw``.

Importing this package imports smolagents; ``import tollway`` does not.
"""

from tollway.adapters.smolagents._convert import TollwayTokenUsage
from tollway.adapters.smolagents.images import TollwayImageTool
from tollway.adapters.smolagents.model import TollwayModel, response_of

__all__ = ["TollwayImageTool", "TollwayModel", "TollwayTokenUsage", "response_of"]
