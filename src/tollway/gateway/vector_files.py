"""Putting uploaded files into configured vector stores, OpenAI-compatibly:

    POST   /v1/vector_stores                        ``name`` of a configured store
    POST   /v1/vector_stores/{id}/files             ``file_id``, ``attributes``, ``chunking_strategy``
    GET    /v1/vector_stores/{id}/files/{file_id}   the file's state in the store
    DELETE /v1/vector_stores/{id}/files/{file_id}   its chunks removed from the store
    POST   /v1/vector_stores/{id}/file_batches      ``file_ids`` or ``files``, all ingested
    GET    /v1/vector_stores/{id}/file_batches/{batch_id}[/files]

Stores are declared in tollway.yaml (``vector_stores:``), not made by clients: create
answers with the configured store of that name when the key may use it (so SDK code
that creates its store first keeps working), else a 400 that says where stores are
declared.

Writing needs its own grant: ``tollway keys create --vector-store-writes docs`` (or
``vector_store_writes`` in the admin API) lets a key add files to ``docs`` and remove
them (and search it); ``--vector-stores`` alone is read-only, so the key an agent
searches with cannot put documents into the store. A key that may read but not write
a store gets 403; one that may not read it, 404 (as if it did not exist). Files need
the key that uploaded them (``/v1/files``); another key's file is 404.

Ingestion runs inside the key's attribution through :meth:`VectorStore.aadd`: the
file's text is chunked (``chunking_strategy``: OpenAI's ``static`` in tokens, about 4
characters each, or ``auto`` for the store's chunking), the chunks embedded through
the store's embedding model under the key's budget guard (``embedding`` ledger rows
under the key), then stored. A budget refusal is a 429 and the file's chunks are
removed again, so nothing half-ingested is searchable; a file that is not UTF-8 text
ends ``failed`` with ``last_error`` (``unsupported_file``) for the backends tollway
chunks; managed backends (openai, llama_stack) get the file whole and parse it.
Chunks are named after the file (``source``: ``<file id>-<file name>``), so search
results give the uploaded file's ``file_id`` and ``filename``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tollway.core.cost.attribution import attribute
from tollway.core.errors import BadRequestError, TollwayError
from tollway.gateway.errors import GatewayError
from tollway.gateway.files import FileRecord, not_found, owned_file
from tollway.gateway.http import HttpRequest, JSONReply, dumps
from tollway.gateway.vector_routes import (
    CHARS_PER_TOKEN,
    allowed_stores,
    store_errors,
    store_for,
    store_json,
    strategy_json,
)

if TYPE_CHECKING:
    from tollway.gateway.runtime import Gateway
    from tollway.vectors.chunking import Chunker
    from tollway.vectors.store import VectorStore

__all__ = ["attach_file", "chunker_of_strategy", "create_batch", "create_store",
           "delete_file", "delete_store_file", "detach_everywhere", "get_batch", "get_store_file",
           "list_batch_files", "writable_store"]



async def create_store(gw: Gateway, req: HttpRequest) -> JSONReply:
    body = req.json()
    name = body.get("name") if isinstance(body, Mapping) else None
    if isinstance(name, str) and name in allowed_stores(gw, req.key):
        return JSONReply(200, dumps(store_json(gw, name)))
    raise BadRequestError(
        f"vector stores are declared under 'vector_stores:' in tollway.yaml, not created "
        f"through the API; {'no configured store named ' + repr(name) if name else 'give name'}"
        f" that this key may use (it may use: {', '.join(allowed_stores(gw, req.key)) or 'none'};"
        " grants: `tollway keys create --vector-stores`)")


def chunker_of_strategy(value: Any, store: VectorStore) -> Chunker | None:
    """OpenAI's ``chunking_strategy`` as tollway's chunker: None for ``auto`` (or none
    given), the store's chunking; ``static`` tokens at 4 characters a token."""
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind == "auto":
        return None
    if kind != "static":
        raise BadRequestError("'chunking_strategy' is {\"type\": \"auto\"} or {\"type\": "
                              "\"static\", \"static\": {\"max_chunk_size_tokens\": 100..4096, "
                              "\"chunk_overlap_tokens\": at most half of it}}")
    static = value.get("static") if isinstance(value, Mapping) else None
    fields: Mapping[str, Any] = static if isinstance(static, Mapping) else {}
    size: Any = fields.get("max_chunk_size_tokens")
    overlap: Any = fields.get("chunk_overlap_tokens", 0)
    if not _whole(size) or not 100 <= size <= 4096:
        raise BadRequestError("chunking_strategy.static.max_chunk_size_tokens is a whole "
                              f"number from 100 to 4096, got {size!r}")
    if not _whole(overlap) or not 0 <= overlap <= size // 2:
        raise BadRequestError("chunking_strategy.static.chunk_overlap_tokens is a whole "
                              f"number from 0 to half of max_chunk_size_tokens, got {overlap!r}")
    if store.backend.embeds_itself:
        raise BadRequestError(f"vector store {store.name!r} is managed ({store.spec.backend}): "
                              "it chunks files on its side; omit chunking_strategy or use auto")
    from tollway.vectors.chunking import Chunker

    return Chunker(size * CHARS_PER_TOKEN, overlap * CHARS_PER_TOKEN)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _attributes(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or len(value) > 16:
        raise BadRequestError("'attributes' is an object of at most 16 keys with string, "
                              "number or boolean values")
    return dict(value)


def _file_json(record: FileRecord, store: str) -> dict[str, Any]:
    state = record.attachments[store]
    return {"id": record.id, "object": "vector_store.file", "created_at": state["created_at"],
            "vector_store_id": store, "status": state["status"],
            "last_error": state.get("last_error"), "usage_bytes": state.get("usage_bytes", 0),
            "attributes": state.get("attributes") or {},
            "chunking_strategy": state.get("chunking_strategy")}


def writable_store(gw: Gateway, req: HttpRequest) -> VectorStore:
    """The store of the path if the key may write it: 404 when it may not even read
    it, 403 when it may only read it."""
    store = store_for(gw, req)
    key = req.key
    if key is not None and not key.allows_store_write(store.name):
        raise GatewayError(403, f"key {key.id} may search vector store '{store.name}' but not "
                                "add or remove files: grant it with `tollway keys create "
                                "--vector-store-writes`", code="vector_store_read_only")
    return store


async def attach_file(gw: Gateway, req: HttpRequest) -> JSONReply:
    store = writable_store(gw, req)
    body = req.json()
    if not isinstance(body, Mapping):
        raise BadRequestError("the request body must be a JSON object")
    (job,) = await _jobs(gw, req, store, [body], body)
    saved, _ = await _ingest(gw, req, store, *job)
    return JSONReply(200, dumps(_file_json(saved, store.name)))


Job = tuple[FileRecord, dict[str, Any], "Chunker | None"]


async def _jobs(gw: Gateway, req: HttpRequest, store: VectorStore,
                items: list[Any], defaults: Mapping[str, Any]) -> list[Job]:
    """Check every file and option before anything is ingested (404 / 400 first)."""
    jobs: list[Job] = []
    for item in items:
        if isinstance(item, str):
            item = {"file_id": item}
        if not isinstance(item, Mapping):
            raise BadRequestError("each file is a file id or {file_id, attributes?, "
                                  "chunking_strategy?}")
        file_id = item.get("file_id")
        if not isinstance(file_id, str) or not file_id:
            raise BadRequestError("the request body needs 'file_id' (from POST /v1/files)")
        attrs = _attributes(item.get("attributes", defaults.get("attributes")))
        record = await owned_file(gw, req.key, file_id)
        with store_errors():
            chunker = chunker_of_strategy(
                item.get("chunking_strategy", defaults.get("chunking_strategy")), store)
        jobs.append((record, attrs, chunker))
    return jobs


async def _ingest(gw: Gateway, req: HttpRequest, store: VectorStore, record: FileRecord,
                  attrs: dict[str, Any], chunker: Chunker | None) -> tuple[FileRecord, bool]:
    """Put one file into ``store``: ``(its saved record, whether it is new there)``.
    A refusal or failure removes what this ingestion stored (unless the file was
    already in the store: then its earlier chunks stay) and raises."""
    with store_errors():
        managed = store.backend.embeds_itself
    try:
        data = await asyncio.to_thread(gw.files.content, record)
    except OSError:  # deleted since it was looked up
        raise not_found(record.id) from None
    state: dict[str, Any] = {"created_at": int(time.time()), "attributes": attrs,
                             "usage_bytes": len(data),
                             "chunking_strategy": strategy_json(chunker, store)}
    before = record.attachments.get(store.name, {}).get("status") == "completed"
    if not managed and not _is_text(data):
        state.update(status="failed", last_error={
            "code": "unsupported_file", "message": f"{record.filename} is not UTF-8 text: "
            f"vector store {store.name!r} ({store.spec.backend}) embeds text tollway chunks; "
            "upload the extracted text, or use a managed backend that parses files"})
        return await _remember(gw, record, store.name, state), False
    try:
        with store_errors():
            async with attribute(gw.attribution(req.key, req.headers, None)):
                result = await store.aadd(files=[(record.source, data)], ids=[record.id],
                                          metadata=attrs, chunking=chunker)
    except TollwayError:
        if not before:  # nothing of a refused or failed first ingestion stays searchable
            await _forget_chunks(store, record)
        raise
    state.update(status="completed", last_error=None, chunks=len(result.ids))
    return await _remember(gw, record, store.name, state), not before


# --------------------------------------------------------------------------- batches


async def create_batch(gw: Gateway, req: HttpRequest) -> JSONReply:
    """``file_ids`` (with shared ``attributes`` / ``chunking_strategy``) or ``files``
    (each its own), ingested one after another before the answer: the batch is
    ``completed`` when it returns (``file_counts`` tells the failed ones). A budget
    refusal is a 429 and removes every file this batch put into the store."""
    store = writable_store(gw, req)
    body = req.json()
    if not isinstance(body, Mapping):
        raise BadRequestError("the request body must be a JSON object")
    items = body.get("files", body.get("file_ids"))
    if not isinstance(items, list) or not items or ("files" in body and "file_ids" in body):
        raise BadRequestError("give 'file_ids' (a non-empty list of file ids) or 'files' "
                              "(a list of {file_id, attributes?, chunking_strategy?}), not both")
    jobs = await _jobs(gw, req, store, items, body)
    done: list[tuple[FileRecord, bool]] = []
    try:
        for job in jobs:
            done.append(await _ingest(gw, req, store, *job))
    except TollwayError:
        for record, new in done:
            if new:
                await _forget_chunks(store, record)
                await _remember(gw, record, store.name, None)
        raise
    batch = {"id": f"vsfb_{secrets.token_hex(12)}", "object": "vector_store.file_batch",
             "created_at": int(time.time()), "vector_store_id": store.name,
             "status": "completed", "file_ids": [r.id for r, _ in done],
             "owner": req.key.id if req.key is not None else None}
    await asyncio.to_thread(gw.files.put_batch, batch)
    return JSONReply(200, dumps(_batch_json(batch, [r for r, _ in done])))


def _batch_json(batch: Mapping[str, Any], records: list[FileRecord]) -> dict[str, Any]:
    counts = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0,
              "total": len(batch["file_ids"])}
    for record in records:
        status = record.attachments.get(batch["vector_store_id"], {}).get("status")
        if status in counts:
            counts[status] += 1
    out = {k: v for k, v in batch.items() if k not in ("file_ids", "owner")}
    return {**out, "file_counts": counts}


async def _batch(gw: Gateway, req: HttpRequest) -> tuple[VectorStore, dict[str, Any],
                                                         list[FileRecord]]:
    store = store_for(gw, req)
    owner = req.key.id if req.key is not None else None
    batch = await asyncio.to_thread(gw.files.get_batch, req.params["batch_id"], owner)
    if batch is None or batch.get("vector_store_id") != store.name:
        raise GatewayError(404, f"No file batch found with id '{req.params['batch_id']}' in "
                                f"vector store '{store.name}'", code="file_batch_not_found")
    records = [r for r in await asyncio.gather(*(
        asyncio.to_thread(gw.files.get, i, owner) for i in batch["file_ids"])) if r is not None]
    return store, batch, records


async def get_batch(gw: Gateway, req: HttpRequest) -> JSONReply:
    _, batch, records = await _batch(gw, req)
    return JSONReply(200, dumps(_batch_json(batch, records)))


async def list_batch_files(gw: Gateway, req: HttpRequest) -> JSONReply:
    store, _, records = await _batch(gw, req)
    data = [_file_json(r, store.name) for r in records if store.name in r.attachments]
    return JSONReply(200, dumps({"object": "list", "data": data,
                                 "first_id": data[0]["id"] if data else None,
                                 "last_id": data[-1]["id"] if data else None,
                                 "has_more": False}))


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def _forget_chunks(store: VectorStore, record: FileRecord) -> None:
    try:
        await store.adelete(filters={"source": record.source})
    except Exception:  # the original error matters more; the chunks can be deleted later
        from tollway.core.logs import logger

        logger("tollway.gateway").exception(
            "could not remove the chunks of %s from vector store %r", record.id, store.name)


async def _remember(gw: Gateway, record: FileRecord, store: str,
                    state: dict[str, Any] | None) -> FileRecord:
    """Save the file's state in ``store`` (None: detached), over the newest metadata."""
    def change(fresh: FileRecord) -> None:
        if state is None:
            fresh.attachments.pop(store, None)
        else:
            fresh.attachments[store] = state

    saved = await asyncio.to_thread(gw.files.update, record.id, record.owner, change)
    if saved is None:  # deleted meanwhile: answer with what was done
        change(record)
        return record
    return saved


async def _attached(gw: Gateway, req: HttpRequest,
                    write: bool = False) -> tuple[VectorStore, FileRecord]:
    store = writable_store(gw, req) if write else store_for(gw, req)
    file_id = req.params["file_id"]
    record = await owned_file(gw, req.key, file_id)
    if store.name not in record.attachments:
        raise GatewayError(404, f"file '{file_id}' is not in vector store '{store.name}' "
                                f"(POST /v1/vector_stores/{store.name}/files adds it)",
                           code="vector_store_file_not_found", param="file_id")
    return store, record


async def get_store_file(gw: Gateway, req: HttpRequest) -> JSONReply:
    store, record = await _attached(gw, req)
    return JSONReply(200, dumps(_file_json(record, store.name)))


async def delete_store_file(gw: Gateway, req: HttpRequest) -> JSONReply:
    store, record = await _attached(gw, req, write=True)
    with store_errors():
        await store.adelete(filters={"source": record.source})
    await _remember(gw, record, store.name, None)
    return JSONReply(200, dumps({"id": record.id, "object": "vector_store.file.deleted",
                                 "deleted": True}))


async def delete_file(gw: Gateway, req: HttpRequest) -> JSONReply:
    """``DELETE /v1/files/{id}``: the file's chunks out of every store, then the file."""
    record = await owned_file(gw, req.key, req.params["id"])
    await detach_everywhere(gw, record)
    await asyncio.to_thread(gw.files.delete, record)
    return JSONReply(200, dumps({"id": record.id, "object": "file", "deleted": True}))


async def detach_everywhere(gw: Gateway, record: FileRecord) -> None:
    """Remove a file's chunks from every store it was put into (``DELETE /v1/files``
    does, as OpenAI's does: the file's owner deletes its content, whatever grants the
    key holds now)."""
    from tollway.gateway.vector_routes import open_store

    for name in list(record.attachments):
        if name not in gw.settings.vector_stores:
            continue  # a store since removed from the config: nothing to reach
        with store_errors():
            await open_store(gw, name).adelete(filters={"source": record.source})
