"""``local/<name>`` embeddings: llama.cpp's embedding mode over a GGUF model, answering
OpenAI ``/embeddings`` JSON in-process (the transport routes the path here).

What the default model is good for, honestly: the ``local`` extra ships one GGUF, the
chat model Qwen2.5-Coder-0.5B-Instruct. Its embedding mode (mean-pooled last hidden
states, 896 dimensions, L2-normalised) is a DEMO-QUALITY embedder: related sentences do
land closer than unrelated ones ("a kitten rested on the rug" is nearer "the cat sat on
the mat" than "stock markets fell today"), enough for a demo or a test of a RAG pipeline
offline, but it was never trained for retrieval and ranks far below a real embedding
model (bge, e5, nomic-embed, gemini-embedding, text-embedding-3). Point ``api_base`` at
an embedding GGUF (``local:///path/bge-small-en-v1.5-q8_0.gguf``) for real use.

A second llama.cpp context is opened in embedding mode (the weights are memory-mapped, so
the file's pages are shared with the chat context); one lock per model serialises calls.
Each text must fit one batch (:data:`MAX_TOKENS`); ``dimensions`` other than the model's
own are refused (truncating a non-Matryoshka model's vectors is not meaningful).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from tollway.local.chat import LocalRequestError
from tollway.local.engine import EngineSettings, import_llama_cpp

__all__ = ["MAX_TOKENS", "EmbeddingEngine", "embedding_body", "embedding_engine_for"]

MAX_TOKENS = 2048
"""The longest text embedded (tokens): llama.cpp pools a text within one batch."""


class EmbeddingEngine:
    """One model loaded in embedding mode. Build through :func:`embedding_engine_for`."""

    def __init__(self, path: Path, settings: EngineSettings) -> None:
        llama_cpp = import_llama_cpp()
        self.path = path
        self.lock = threading.Lock()
        self.llama = llama_cpp.Llama(
            model_path=str(path), embedding=True,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            n_ctx=MAX_TOKENS, n_batch=MAX_TOKENS, n_ubatch=MAX_TOKENS,
            n_threads=settings.threads, n_threads_batch=settings.threads, verbose=False,
        )

    @property
    def dimensions(self) -> int:
        return int(self.llama.n_embd())

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=True, special=False))

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """(unit vectors in order, tokens embedded)."""
        counts = [self.count_tokens(t) for t in texts]
        for index, count in enumerate(counts):
            if count > MAX_TOKENS:
                raise LocalRequestError(
                    f"input[{index}] is {count} tokens; the local embedder takes at most "
                    f"{MAX_TOKENS} a text: split it", code="context_length_exceeded",
                    param="input",
                )
        with self.lock:
            vectors = self.llama.embed(texts, normalize=True)
        return [list(map(float, v)) for v in vectors], sum(counts)


_ENGINES: dict[Path, EmbeddingEngine] = {}
_LOCK = threading.Lock()


def embedding_engine_for(path: Path) -> EmbeddingEngine:
    key = path.resolve()
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = EmbeddingEngine(key, EngineSettings.from_env())
    return engine


def embedding_body(engine: EmbeddingEngine, body: dict[str, Any], model: str) -> bytes:
    """OpenAI ``/embeddings`` answer JSON for an OpenAI request body."""
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise LocalRequestError("'input' must be a string or a non-empty list of strings",
                                param="input")
    wanted = body.get("dimensions")
    if wanted is not None and wanted != engine.dimensions:
        raise LocalRequestError(
            f"the local model embeds in {engine.dimensions} dimensions; it cannot give "
            f"{wanted} (leave dimensions unset)", param="dimensions",
        )
    if body.get("encoding_format") not in (None, "float"):
        raise LocalRequestError("the local embedder answers floats only (encoding_format: "
                                "float)", param="encoding_format")
    vectors, tokens = engine.embed(texts)
    return json.dumps({
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }).encode("utf-8")
