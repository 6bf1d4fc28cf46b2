"""Google's embeddings and image endpoints (sans-I/O): Gemini API and Vertex AI."""

from tollway.core.dialects.gemini_media.embeddings import (
    GeminiEmbeddingDialect,
    VertexEmbeddingDialect,
)
from tollway.core.dialects.gemini_media.images import GeminiImageDialect, ImagenDialect

__all__ = [
    "GeminiEmbeddingDialect",
    "GeminiImageDialect",
    "ImagenDialect",
    "VertexEmbeddingDialect",
]
