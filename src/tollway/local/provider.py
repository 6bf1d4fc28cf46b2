"""The ``local`` provider row: in-process GGUF models through llama.cpp, speaking the
OpenAI chat format, served by :class:`~tollway.local.transport.LocalTransport`.

Imported by ``tollway.core.providers`` the first time a target names ``local/...``
(through ``tollway.core.plugins``); importing it registers the row and the transport.
"""

from __future__ import annotations

from tollway.core.providers import ProviderSpec, register_provider

LOCAL = ProviderSpec(
    "local", "openai_chat", "local://", auth="none", key_required=False,
    dialect_options=(("max_tokens_field", "max_tokens"),), in_process=True,
    embeddings="openai",
    docs="in-process GGUF model through llama.cpp (the `local` extra)",
)


def _transport() -> object:
    from tollway.local.transport import local_transport

    return local_transport()


register_provider(LOCAL, _transport)
