"""LangGraph / LangChain adapter: :class:`TollwayChatModel`, a ``BaseChatModel`` whose
calls are routed, priced, budget-checked and attributed to the graph node that made
them. Importing this package imports langchain-core (install ``tollway[langgraph]``)."""

from tollway.adapters.langgraph.chat_model import TollwayChatModel

__all__ = ["TollwayChatModel"]
