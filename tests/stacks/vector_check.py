"""Drive the gateway's /v1/files and /v1/vector_stores through a stack's own client.

Run by tests/gateway/test_stack_clients_vector_stores.py with the stack venv's Python
(llama_stack_client and ogx_client are not in tollway's environment), pointed straight
at a ``tollway gateway`` with a virtual key as the api key (no stack server between):

``python vector_check.py MODULE URL KEY STORE ingest DRIVER`` (DRIVER ``sync`` or
``async``: the client's sync or async class) uploads a text file, attaches it
to STORE, lists the stores and STORE's files, searches STORE, deletes the file from the
store and then the upload, and prints one JSON object with what it saw.

``python vector_check.py MODULE URL KEY STORE managed DRIVER`` uploads, attaches, lists
and searches on a managed STORE (a backend that chunks files itself).

``python vector_check.py MODULE URL KEY STORE denied DRIVER`` tries a search and an attach with
a key that lacks STORE's read / write grant and prints the client's error for each
(its exception class and HTTP status): the gateway must answer in a way the client maps
to its own typed not-found / permission errors.

Standard library and the stack's client only.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

NOTE = ("Oslo note. The Oslo office opens at eight and the canteen serves lunch at noon.\n\n"
        "Paris note. The Paris office opens at nine; visitors sign in at the front desk.")
QUERY = "When does the Paris office open?"


class Client:
    """The few calls this script makes, in each client's own spelling, on its sync or
    its async client (``driver``); every method is a coroutine either way.

    llama_stack_client is Stainless-generated (the openai SDK's shape: keyword
    arguments, ``vector_stores.files``, cursor pages). ogx_client is OpenAPI-generator
    code: request bodies as keyword arguments it folds into its own request model,
    ``vector_stores.files`` wired to its VectorStoresFilesApi, list responses with
    ``data``. Both take the upload as ``(name, bytes)`` and ``purpose`` as a string.
    """

    def __init__(self, module: str, url: str, key: str, driver: str) -> None:
        self.module = module
        package = importlib.import_module(module)
        prefix = "Async" if driver == "async" else ""
        if module == "llama_stack_client":
            cls = getattr(package, f"{prefix}LlamaStackClient")
            self.raw = cls(base_url=url, api_key=key, max_retries=0)
        else:
            self.raw = getattr(package, f"{prefix}OgxClient")(base_url=url, api_key=key)

    async def upload(self, name: str, data: bytes) -> Any:
        return await _done(self.raw.files.create(file=(name, data), purpose="assistants"))

    async def attach(self, store: str, file_id: str) -> Any:
        return await _done(self.raw.vector_stores.files.create(
            vector_store_id=store, file_id=file_id, attributes={"team": "facilities"}))

    async def stores(self) -> list[Any]:
        return list((await _done(self.raw.vector_stores.list())).data)

    async def retrieve(self, store: str) -> Any:
        return await _done(self.raw.vector_stores.retrieve(vector_store_id=store))

    async def files(self, store: str) -> list[Any]:
        listing = await _done(self.raw.vector_stores.files.list(vector_store_id=store))
        return list(listing.data)  # one page (the first): a Stainless page has data too

    async def search(self, store: str, query: str) -> list[Any]:
        page = await _done(self.raw.vector_stores.search(vector_store_id=store, query=query,
                                                         max_num_results=2))
        return list(page.data)

    async def detach(self, store: str, file_id: str) -> Any:
        return await _done(self.raw.vector_stores.files.delete(vector_store_id=store,
                                                               file_id=file_id))

    async def delete(self, file_id: str) -> Any:
        return await _done(self.raw.files.delete(file_id=file_id))

    async def close(self) -> None:
        if self.module == "ogx_client" and not inspect.iscoroutinefunction(self.raw.close):
            # ogx_client 1.5.0: the sync OgxClient.close() (and its ``with`` exit) calls
            # ApiClient.close(), which does not exist (AttributeError); close what
            # ApiClient's own __exit__ closes instead.
            self.raw.api_client.rest_client.close()
            return
        await _done(self.raw.close())


async def _done(value: Any) -> Any:
    """The sync client's result as is, the async client's awaited."""
    return await value if inspect.isawaitable(value) else value


def _text(hit: Any) -> str:
    return "".join(getattr(getattr(c, "actual_instance", c), "text", "") for c in hit.content)


async def ingest(client: Client, store: str) -> dict[str, Any]:
    made = await client.upload("offices.txt", NOTE.encode())
    attached = await client.attach(store, made.id)
    seen_store = await client.retrieve(store)
    files = await client.files(store)
    hits = await client.search(store, QUERY)
    detached = await client.detach(store, made.id)
    after = await client.search(store, QUERY)
    try:  # the store is empty now
        emptied: Any = [f.id for f in await client.files(store)]
    except Exception as exc:  # ogx_client: see the test's note on the empty listing
        emptied = {"error": type(exc).__name__, "message": str(exc)[:600]}
    deleted = await client.delete(made.id)
    return {
        "file": {"id": made.id, "filename": made.filename, "bytes": made.bytes,
                 "purpose": str(getattr(made.purpose, "value", made.purpose))},
        "attached": {"id": attached.id, "status": str(getattr(attached.status, "value",
                                                              attached.status)),
                     "vector_store_id": attached.vector_store_id},
        "stores": [s.id for s in await client.stores()],
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


async def denied(client: Client, store: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("search", lambda: client.search(store, QUERY)),
        ("upload", lambda: client.upload("spam.txt", b"Buy cheap watches.")),
        ("attach", lambda: client.attach(store, seen["upload"]["id"]))]
    for step, call in steps:
        try:
            result = await call()
        except Exception as exc:
            status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
            seen[step] = {"error": type(exc).__name__, "status": status,
                          "message": str(exc)[:600]}
        else:
            seen[step] = {"id": result.id} if step == "upload" else {"hits": len(result)}
    return seen


async def managed(client: Client, store: str) -> dict[str, Any]:
    """Upload and attach to a store whose backend chunks files itself (its files'
    ``chunking_strategy`` is OpenAI's ``other``), list and search it (each step's
    result or the client's error), then delete the file from the store and the upload."""
    made = await client.upload("capitals.txt", b"Oslo is the capital of Norway.")
    seen: dict[str, Any] = {"file_id": made.id}
    for step, call in [("attach", lambda: client.attach(store, made.id)),
                       ("files", lambda: client.files(store)),
                       ("search", lambda: client.search(store, "capital of Norway"))]:
        try:
            result = await call()
        except Exception as exc:
            seen[step] = {"error": type(exc).__name__, "message": str(exc)[:600]}
        else:
            seen[step] = {"status": str(getattr(result.status, "value", result.status))} \
                if step == "attach" else {"ids": [getattr(r, "file_id", None) or r.id
                                                  for r in result]}
    seen["detached"] = bool((await client.detach(store, made.id)).deleted)
    seen["deleted"] = bool((await client.delete(made.id)).deleted)
    return seen


MODES = {"ingest": ingest, "denied": denied, "managed": managed}


async def run(module: str, url: str, key: str, store: str, mode: str,
              driver: str) -> dict[str, Any]:
    client = Client(module, url, key, driver)
    try:
        return await MODES[mode](client, store)
    finally:
        await client.close()


def main() -> None:
    module, url, key, store, mode, driver = sys.argv[1:7]
    warnings.simplefilter("ignore")  # ogx_client's pydantic serializer warnings
    print(json.dumps(asyncio.run(run(module, url, key, store, mode, driver))))


if __name__ == "__main__":
    main()
