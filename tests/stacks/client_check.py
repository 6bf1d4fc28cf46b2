"""Drive a running stack through its own Python client; prints one JSON object.

Run by tests/gateway/test_llama_stack.py with the stack venv's Python (llama_stack_client
and ogx_client are not in tollway's environment): ``python client_check.py MODULE URL
CHAT_MODEL EMBED_MODEL``. Standard library and the stack's client only.
"""

from __future__ import annotations

import importlib
import json
import sys
import warnings
from typing import Any


def client_for(module: str, url: str) -> Any:
    package = importlib.import_module(module)
    cls = package.LlamaStackClient if module == "llama_stack_client" else package.OgxClient
    return cls(base_url=url)


def model_rows(listing: Any) -> list[dict[str, Any]]:
    # ogx_client wraps the OpenAI list in a oneOf holder; llama_stack_client returns a list.
    listing = getattr(listing, "actual_instance", listing)
    models = getattr(listing, "data", listing)
    return [{"id": m.id, "metadata": dict(m.custom_metadata or {})} for m in models]


def main() -> None:
    module, url, chat_model, embed_model = sys.argv[1:5]
    warnings.simplefilter("ignore")  # ogx_client's pydantic serializer warnings
    client = client_for(module, url)
    messages = [{"role": "user", "content": "ping from the stack client"}]
    chat = client.chat.completions.create(model=chat_model, messages=messages, user="stack-client")
    stream = client.chat.completions.create(model=chat_model, messages=messages, stream=True)
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    embedded = client.embeddings.create(model=embed_model, input=["the cat sat", "a dog ran"])
    response = client.responses.create(model=chat_model, input="hello from the client responses")
    print(json.dumps({
        "models": model_rows(client.models.list()),
        "chat": chat.choices[0].message.content,
        "stream": "".join(pieces),
        "embeddings": [list(d.embedding) for d in embedded.data],
        "response": response.output_text,
    }))


if __name__ == "__main__":
    main()
