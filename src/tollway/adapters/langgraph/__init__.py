"""LangGraph / LangChain adapter: :class:`TollwayChatModel`, a ``BaseChatModel`` whose
calls are routed, priced, budget-checked and attributed to the graph node that made
them; :class:`TollwayEmbeddings` (LangChain ``Embeddings``, for vector stores and
retrievers) and :func:`image_tool` (image generation as a tool), metered the same way. Importing this package imports langchain-core (install ``tollway[langgraph]``)."""

from tollway.adapters.langgraph.chat_model import TollwayChatModel
from tollway.adapters.langgraph.embeddings import TollwayEmbeddings
from tollway.adapters.langgraph.images import image_tool

__all__ = ["TollwayChatModel", "TollwayEmbeddings", "image_tool"]
