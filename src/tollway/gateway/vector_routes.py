"""OpenAI-compatible vector store endpoints over the stores of ``vector_stores:``:

    GET  /v1/vector_stores                  the stores the key may use
    GET  /v1/vector_stores/{id}             one (its id is its configured name)
    GET  /v1/vector_stores/{id}/files       its files / chunks (``limit``, ``after``): a
                                            file uploaded through ``/v1/files`` is one
                                            item (its file id), other chunks one each
    POST /v1/vector_stores/{id}/search      ``query``, ``max_num_results``, ``filters``

Permissions are per store and deny by default: a key lists the stores it may use
(``tollway keys create --vector-stores a,b``); any other store is absent from the list
and answers 404, as if it did not exist (a 403 would tell a stranger it does). Each
search runs inside the key's attribution, so its ``retrieval`` ledger row names the
key, and the store's query embeddings pass the key's budget guard. ``filters`` take
OpenAI's comparison / compound format or tollway's own filter language.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tollway.core.cost.attribution import attribute
from tollway.core.errors import BadRequestError
from tollway.gateway.errors import GatewayError
from tollway.gateway.http import HttpRequest, JSONReply, dumps

if TYPE_CHECKING:
    from tollway.gateway.keys import VirtualKey
    from tollway.gateway.runtime import Gateway
    from tollway.vectors.chunking import Chunker
    from tollway.vectors.store import VectorStore

__all__ = ["allowed_stores", "filters_from_openai", "get_store", "list_files", "list_stores",
           "open_store", "search", "store_errors", "store_for", "store_json", "strategy_json"]

CHARS_PER_TOKEN = 4
"""What tollway's chunker assumes of English text (see tollway.vectors.chunking)."""

_UPLOADED = re.compile(r"^(file-[0-9a-f]{24})-(.+)$")
"""The ``source`` of chunks ingested from ``/v1/files``: ``<file id>-<file name>``."""
_FILE_ID = re.compile(r"^file-[0-9a-f]{24}$")

_COMPARE = {"eq", "ne", "gt", "gte", "lt", "lte", "in"}


def filters_from_openai(value: Any) -> Any:
    """OpenAI's ``{type, key, value}`` / ``{type: and|or, filters}`` as tollway's filter
    language (anything without ``type`` is taken as tollway's language already)."""
    if not isinstance(value, Mapping) or "type" not in value:
        return value
    kind = value["type"]
    if kind in ("and", "or"):
        parts = value.get("filters")
        if not isinstance(parts, list):
            raise BadRequestError(f"a '{kind}' filter needs 'filters' (a list)")
        return {f"${kind}": [filters_from_openai(p) for p in parts]}
    if kind not in _COMPARE or not isinstance(value.get("key"), str):
        raise BadRequestError(f"unsupported filter type {kind!r} (use eq, ne, gt, gte, lt, "
                              "lte, in, and, or) or a filter without 'key'")
    return {value["key"]: {f"${kind}": value.get("value")}}


@contextmanager
def store_errors() -> Iterator[None]:
    """A store's errors in HTTP terms: a bad filter or argument is the client's 400; a
    backend that cannot answer is a 503 the client may retry."""
    from tollway.vectors.errors import BackendUnavailableError, VectorStoreError

    try:
        yield
    except BackendUnavailableError as exc:
        raise GatewayError(503, str(exc), code="vector_store_unavailable",
                           retry_after=1) from None
    except VectorStoreError as exc:
        raise BadRequestError(str(exc)) from None


def allowed_stores(gw: Gateway, key: VirtualKey | None) -> list[str]:
    return [n for n in gw.settings.vector_stores if key is None or key.allows_store(n)]


def store_for(gw: Gateway, req: HttpRequest) -> VectorStore:
    name = req.params["id"]
    if name not in allowed_stores(gw, req.key):
        raise GatewayError(404, f"No vector store found with id '{name}' (or this key may "
                                "not use it: see `tollway keys create --vector-stores`)",
                           code="vector_store_not_found")
    return open_store(gw, name)


def open_store(gw: Gateway, name: str) -> VectorStore:
    """The configured store ``name``, opened once per gateway process (no grant check:
    callers check the key first)."""
    store = gw.vector_stores.get(name)
    if store is None:
        from tollway.vectors.store import VectorStore

        store = VectorStore(name, config=gw.settings,
                            embedding_options={"guards": [gw.guard]})
        gw.vector_stores[name] = store
    return store


def store_json(gw: Gateway, name: str) -> dict[str, Any]:
    spec = gw.settings.vector_stores[name]
    return {"id": name, "object": "vector_store", "name": name, "created_at": 0,
            "status": "completed", "usage_bytes": 0, "metadata": {"backend": spec.backend},
            "file_counts": {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0,
                            "total": 0}, "expires_after": None, "expires_at": None,
            "last_active_at": None}


def strategy_json(chunker: Chunker | None, store: VectorStore) -> dict[str, Any]:
    """OpenAI's ``chunking_strategy`` of a store file: ``static`` in tokens for the
    chunker used (the store's when None), ``other`` when a managed backend chunked it."""
    if store.backend.embeds_itself:
        return {"type": "other"}
    used = chunker or store.chunker
    return {"type": "static", "static": {
        "max_chunk_size_tokens": used.size // CHARS_PER_TOKEN,
        "chunk_overlap_tokens": used.overlap // CHARS_PER_TOKEN}}


async def list_stores(gw: Gateway, req: HttpRequest) -> JSONReply:
    data = [store_json(gw, n) for n in allowed_stores(gw, req.key)]
    return JSONReply(200, dumps({"object": "list", "data": data,
                                 "first_id": data[0]["id"] if data else None,
                                 "last_id": data[-1]["id"] if data else None,
                                 "has_more": False}))


async def get_store(gw: Gateway, req: HttpRequest) -> JSONReply:
    store_for(gw, req)
    return JSONReply(200, dumps(store_json(gw, req.params["id"])))


async def list_files(gw: Gateway, req: HttpRequest) -> JSONReply:
    from urllib.parse import parse_qs

    store = store_for(gw, req)
    query = {k: v[-1] for k, v in parse_qs(req.query).items()}
    try:
        limit = int(query.get("limit", 20))
    except ValueError:
        raise BadRequestError("'limit' is a whole number from 1 to 100") from None
    after = query.get("after")
    with store_errors():
        managed = store.backend.embeds_itself
        if after and not managed and _FILE_ID.match(after):
            after += "#~"  # past every chunk of that uploaded file ('~' sorts after digits)
        page = await store.alist(limit=max(1, min(limit, 100)), after=after)
    data: list[dict[str, Any]] = []
    default = strategy_json(None, store)
    for c in page.chunks:
        item = {"id": c.id, "object": "vector_store.file", "created_at": 0,
                "vector_store_id": store.name, "status": "completed", "last_error": None,
                "usage_bytes": len(c.text.encode()), "attributes": dict(c.metadata),
                "chunking_strategy": default}
        found = None if managed else _UPLOADED.match(c.source or "")
        if found is not None:  # an uploaded file's chunks (contiguous in id order): one item
            if data and data[-1]["id"] == found.group(1):
                data[-1]["usage_bytes"] += item["usage_bytes"]
                continue
            item["id"] = found.group(1)
            item["attributes"] = {k: v for k, v in c.metadata.items()
                                  if k not in ("source", "chunk_index")}
        data.append(item)
    await _recorded_strategies(gw, req.key, store.name, data)
    return JSONReply(200, dumps({"object": "list", "data": data,
                                 "first_id": data[0]["id"] if data else None,
                                 "last_id": data[-1]["id"] if data else None,
                                 "has_more": page.next_after is not None}))


async def _recorded_strategies(gw: Gateway, key: VirtualKey | None, store: str,
                               items: list[dict[str, Any]]) -> None:
    """Give the key's own uploaded files the ``chunking_strategy`` they were attached
    with (its file records say; another key's records stay unread, so those items keep
    the store's chunking). OpenAI returns the field on every store file, and clients
    with strict models (ogx_client) reject an item without it."""
    import asyncio

    owner = key.id if key is not None else None
    for item in items:
        if not _FILE_ID.match(item["id"]):
            continue
        record = await asyncio.to_thread(gw.files.get, item["id"], owner)
        state = record.attachments.get(store) if record is not None else None
        if state and state.get("chunking_strategy"):
            item["chunking_strategy"] = state["chunking_strategy"]


async def search(gw: Gateway, req: HttpRequest) -> JSONReply:
    store = store_for(gw, req)
    body = req.json()
    if not isinstance(body, Mapping):
        raise BadRequestError("the request body must be a JSON object")
    query = body.get("query")
    if isinstance(query, list) and query and all(isinstance(q, str) for q in query):
        query = " ".join(query)
    if not isinstance(query, str) or not query.strip():
        raise BadRequestError("the request body needs 'query' (a string)")
    k = body.get("max_num_results", 10)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 50:
        raise BadRequestError("'max_num_results' is a whole number from 1 to 50")
    filters = filters_from_openai(body.get("filters"))
    started = time.perf_counter()
    with store_errors():
        async with attribute(gw.attribution(req.key, req.headers, None)):
            hits = await store.asearch(query, k=k, filters=filters)
    data = [{**_file_of(h.id, h.source), "score": h.score, "attributes": dict(h.metadata),
             "content": [{"type": "text", "text": h.text}]} for h in hits]
    headers = {"x-tollway-latency-ms": f"{(time.perf_counter() - started) * 1000:.1f}"}
    return JSONReply(200, dumps({"object": "vector_store.search_results.page",
                                 "search_query": [query], "data": data, "has_more": False,
                                 "next_page": None}), headers)


def _file_of(chunk_id: str, source: str | None) -> dict[str, str]:
    """``file_id`` / ``filename`` of a hit: the uploaded file's id and name for chunks
    ingested from ``/v1/files``, else the chunk's id and source."""
    found = _UPLOADED.match(source or "")
    if found is not None:
        return {"file_id": found.group(1), "filename": found.group(2)}
    return {"file_id": chunk_id, "filename": source or chunk_id}
