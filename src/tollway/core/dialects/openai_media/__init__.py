"""OpenAI's embeddings and images endpoints (sans-I/O), for OpenAI and the servers that
copy them; errors read as in the chat dialect (same error JSON)."""

from tollway.core.dialects.openai_media.embeddings import OpenAIEmbeddingDialect, decode_vector
from tollway.core.dialects.openai_media.images import OpenAIImageDialect

__all__ = ["OpenAIEmbeddingDialect", "OpenAIImageDialect", "decode_vector"]
