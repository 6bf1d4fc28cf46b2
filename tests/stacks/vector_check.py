"""Drive the gateway's /v1/files and /v1/vector_stores through a stack's own client.

Run by tests/gateway/test_stack_clients_vector_stores.py with the stack venv's Python
(llama_stack_client and ogx_client are not in tollway's environment), pointed straight
at a ``tollway gateway`` with a virtual key as the api key (no stack server between):

``python vector_check.py MODULE URL KEY STORE ingest`` uploads a text file, attaches it
to STORE, lists the stores and STORE's files, searches STORE, deletes the file from the
store and then the upload, and prints one JSON object with what it saw.

``python vector_check.py MODULE URL KEY STORE denied`` tries a search and an attach with
a key that lacks STORE's read / write grant and prints the client's error for each
(its exception class and HTTP status): the gateway must answer in a way the client maps
to its own typed not-found / permission errors.

Standard library and the stack's client only.
"""

from __future__ import annotations

import importlib
import json
import sys
import warnings
from typing import Any

NOTE = ("Oslo note. The Oslo office opens at eight and the canteen serves lunch at noon.\n\n"
        "Paris note. The Paris office opens at nine; visitors sign in at the front desk.")
QUERY = "When does the Paris office open?"


class Client:
    """The few calls this script makes, in each client's own spelling.

    llama_stack_client is Stainless-generated (the openai SDK's shape: keyword
    arguments, ``vector_stores.files``, paginated lists). ogx_client is
    OpenAPI-generator code: request bodies as keyword arguments it folds into its own
    request model, lists that return a response object with ``data``, ``files.create``
    that takes the file as ``(name, bytes)`` and ``purpose`` as a plain string.
    """

    def __init__(self, module: str, url: str, key: str) -> None:
        self.module = module
        package = importlib.import_module(module)
        if module == "llama_stack_client":
            self.raw = package.LlamaStackClient(base_url=url, api_key=key, max_retries=0)
        else:
            self.raw = package.OgxClient(base_url=url, api_key=key)
        self.errors = importlib.import_module(
            "llama_stack_client" if module == "llama_stack_client" else "ogx_client.exceptions")

    def _items(self, listing: Any) -> list[Any]:
        """A Stainless page iterates over its items (and fetches later pages); an
        OpenAPI-generator list response holds them in ``data``."""
        return list(listing) if self.module == "llama_stack_client" else list(listing.data)

    def upload(self, name: str, data: bytes) -> Any:
        return self.raw.files.create(file=(name, data), purpose="assistants")

    def attach(self, store: str, file_id: str) -> Any:
        return self.raw.vector_stores.files.create(vector_store_id=store, file_id=file_id,
                                                   attributes={"team": "facilities"})

    def stores(self) -> list[Any]:
        return self._items(self.raw.vector_stores.list())

    def retrieve(self, store: str) -> Any:
        return self.raw.vector_stores.retrieve(vector_store_id=store)

    def files(self, store: str) -> list[Any]:
        return self._items(self.raw.vector_stores.files.list(vector_store_id=store))

    def search(self, store: str, query: str) -> list[Any]:
        page = self.raw.vector_stores.search(vector_store_id=store, query=query,
                                             max_num_results=2)
        return list(page.data)

    def detach(self, store: str, file_id: str) -> Any:
        return self.raw.vector_stores.files.delete(vector_store_id=store, file_id=file_id)

    def delete(self, file_id: str) -> Any:
        return self.raw.files.delete(file_id=file_id)


def _text(hit: Any) -> str:
    return "".join(getattr(getattr(c, "actual_instance", c), "text", "") for c in hit.content)


def ingest(client: Client, store: str) -> dict[str, Any]:
    made = client.upload("offices.txt", NOTE.encode())
    attached = client.attach(store, made.id)
    seen_store = client.retrieve(store)
    files = client.files(store)
    hits = client.search(store, QUERY)
    detached = client.detach(store, made.id)
    after = client.search(store, QUERY)
    try:  # the store is empty now
        emptied: Any = [f.id for f in client.files(store)]
    except Exception as exc:  # ogx_client: see the test's note on the empty listing
        emptied = {"error": type(exc).__name__, "message": str(exc)[:600]}
    deleted = client.delete(made.id)
    return {
        "file": {"id": made.id, "filename": made.filename, "bytes": made.bytes,
                 "purpose": str(getattr(made.purpose, "value", made.purpose))},
        "attached": {"id": attached.id, "status": str(getattr(attached.status, "value",
                                                              attached.status)),
                     "vector_store_id": attached.vector_store_id},
        "stores": [s.id for s in client.stores()],
        "store": {"id": seen_store.id, "object": seen_store.object},
        "files": [{"id": f.id, "attributes": _plain(f.attributes)} for f in files],
        "hits": [{"file_id": h.file_id, "filename": h.filename, "score": h.score,
                  "text": _text(h), "attributes": _plain(h.attributes)} for h in hits],
        "detached": bool(detached.deleted),
        "after": [h.file_id for h in after],
        "emptied": emptied,
        "deleted": bool(deleted.deleted),
    }


def _plain(value: Any) -> Any:
    """Attributes as JSON: ogx_client wraps each value in a oneOf holder."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return getattr(value, "actual_instance", value)


def denied(client: Client, store: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for step, call in [("search", lambda: client.search(store, QUERY)),
                       ("upload", lambda: client.upload("spam.txt", b"Buy cheap watches.")),
                       ("attach", None)]:
        try:
            if call is None:
                call = lambda: client.attach(store, seen["upload"]["id"])  # noqa: E731
            result = call()
        except Exception as exc:
            status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
            seen[step] = {"error": type(exc).__name__, "status": status,
                          "message": str(exc)[:600]}
        else:
            seen[step] = {"id": result.id} if step == "upload" else {"hits": len(result)}
    return seen


def main() -> None:
    module, url, key, store, mode = sys.argv[1:6]
    warnings.simplefilter("ignore")  # ogx_client's pydantic serializer warnings
    client = Client(module, url, key)
    print(json.dumps(ingest(client, store) if mode == "ingest" else denied(client, store)))


if __name__ == "__main__":
    main()
