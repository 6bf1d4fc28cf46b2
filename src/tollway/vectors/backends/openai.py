"""Managed backends over the OpenAI vector stores API: ``backend: openai`` and, with
the same code, ``backend: llama_stack`` (Llama Stack / OGX serves the same API under
``/v1``: ``/v1/files``, ``/v1/vector_stores``...).

The server chunks and embeds; tollway uploads whole documents and searches:

- ``add_files``: ``POST /files`` (multipart, ``purpose=assistants``), then ``POST
  /vector_stores/{id}/files`` with the document's metadata as ``attributes`` (plus
  ``source``, the document name), then polls ``GET /vector_stores/{id}/files/{file}``
  until ``completed`` or ``failed``, within the store's ``options.ingest_timeout``
  (default 300 s). A document added again under the same name replaces the older file
  once the new one is searchable.
- ``search``: ``POST /vector_stores/{id}/search`` with ``query``, ``max_num_results``
  and ``filters`` translated to OpenAI's comparison / compound filters
  (:func:`openai_filter`). A hit's id is its file id; its metadata the file's attributes.
- ``delete`` / ``list``: by file (ids are file ids; filters are evaluated over the
  files' attributes with the reference semantics, since the API deletes by file only).

Fees: OpenAI bills file search at $2.50 per 1,000 calls, set on every search result
(``backend_fee_nanos``) so the retrieval ledger row carries it; storage ($0.10 per
GB-day past the first GB) is billed by OpenAI per day and is not per-call. A Llama
Stack distribution is self-hosted: no fee unless ``options.search_fee_usd`` says one.

The store is found by ``vector_store_id``; without one, by its name among the
server's stores, created when absent (``options.create``: extra fields of the create
body, e.g. Llama Stack's ``embedding_model`` / ``provider_id``).
"""

from __future__ import annotations

import asyncio
import os
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tollway.vectors.errors import BackendUnavailableError, VectorStoreError
from tollway.vectors.filters import All, Any_, Filter, matches
from tollway.vectors.types import Chunk, ChunkPage, ScoredChunk, SearchResult

if TYPE_CHECKING:
    import httpx

    from tollway.core.config import TollwaySettings
    from tollway.core.config.schema import VectorStoreSpec
    from tollway.vectors.backend import DocumentInput

__all__ = ["OPENAI_SEARCH_FEE_NANOS", "OpenAIVectorBackend", "open_backend", "openai_filter"]

OPENAI_SEARCH_FEE_NANOS = 2_500_000
"""$2.50 per 1,000 file-search calls, in nano-USD per call."""

_DEFAULT_URLS = {"openai": "https://api.openai.com/v1", "llama_stack": "http://127.0.0.1:8321/v1"}
_ATTRIBUTE_LIMIT = 16  # OpenAI keeps at most 16 attributes per file


def open_backend(name: str, spec: VectorStoreSpec,
                 settings: TollwaySettings | None) -> OpenAIVectorBackend:
    kind = spec.backend
    env = spec.key_env or ("OPENAI_API_KEY" if kind == "openai" else "LLAMA_STACK_API_KEY")
    key = os.environ.get(env)
    if key is None and kind == "openai":
        raise BackendUnavailableError(
            f"no API key: set {env} in the environment (the store's 'api_key: env:VAR')",
            store=name, backend=kind)
    options = dict(spec.options)
    fee = options.get("search_fee_usd")
    fee_nanos = (OPENAI_SEARCH_FEE_NANOS if kind == "openai" else 0) if fee is None \
        else int(Decimal(str(fee)) * 10**9)
    return OpenAIVectorBackend(
        spec.base_url or _DEFAULT_URLS[kind], key, store=name, kind=kind,
        vector_store_id=spec.vector_store_id, timeout=spec.timeout,
        search_fee_nanos=fee_nanos, create=dict(options.get("create") or {}),
        ingest_timeout=float(options.get("ingest_timeout", 300.0)),
        poll_interval=float(options.get("poll_interval", 1.0)))


def openai_filter(flt: Filter) -> dict[str, Any]:
    """tollway's filter tree as OpenAI's filter object: ``{type: eq|ne|gt|gte|lt|lte|in,
    key, value}`` and ``{type: and|or, filters: [...]}``."""
    if isinstance(flt, All | Any_):
        parts = [openai_filter(f) for f in flt.items]
        if len(parts) == 1:
            return parts[0]
        return {"type": "and" if isinstance(flt, All) else "or", "filters": parts}
    value: Any = list(flt.value) if isinstance(flt.value, tuple) else flt.value
    return {"type": flt.op, "key": flt.key, "value": value}


def _attributes(doc: DocumentInput, store: str | None) -> dict[str, Any]:
    attrs = {**doc.metadata, "source": doc.name}
    if len(attrs) > _ATTRIBUTE_LIMIT:
        raise VectorStoreError(
            f"{doc.name}: a managed store keeps at most {_ATTRIBUTE_LIMIT} metadata keys per "
            f"file (source included), got {len(attrs)}", store=store)
    return attrs


class OpenAIVectorBackend:
    """One vector store of an OpenAI-compatible server, over ``httpx`` (created on the
    store's loop thread at first use)."""

    embeds_itself = True

    def __init__(self, base_url: str, api_key: str | None, *, store: str | None = None,
                 kind: str = "openai", vector_store_id: str | None = None,
                 timeout: float = 30.0, search_fee_nanos: int = OPENAI_SEARCH_FEE_NANOS,
                 create: dict[str, Any] | None = None, ingest_timeout: float = 300.0,
                 poll_interval: float = 1.0) -> None:
        self.name = kind
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self.store = store
        self.vector_store_id = vector_store_id
        self.timeout = timeout
        self.search_fee_nanos = search_fee_nanos
        self.create_fields = create or {}
        self.ingest_timeout = ingest_timeout
        self.poll_interval = poll_interval
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:  # never the key
        return (f"OpenAIVectorBackend({self.base_url!r}, kind={self.name!r}, "
                f"vector_store_id={self.vector_store_id!r})")

    # ------------------------------------------------------------------ http

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            headers = {"OpenAI-Beta": "assistants=v2"}
            if self._key:
                headers["Authorization"] = f"Bearer {self._key}"
            self._client = httpx.AsyncClient(base_url=self.base_url, headers=headers,
                                             timeout=self.timeout)
        return self._client

    async def _call(self, method: str, path: str, *, ok404: bool = False,
                    **kw: Any) -> Any:
        import httpx

        try:
            response = await self._http().request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise BackendUnavailableError(
                f"{type(exc).__name__} calling {method} {self.base_url}{path} (is the server "
                "up and 'base_url:' right?)", store=self.store, backend=self.name) from None
        if ok404 and response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise self._error(method, path, response)
        return response.json() if response.content else {}

    def _error(self, method: str, path: str, response: httpx.Response) -> VectorStoreError:
        try:
            detail = response.json().get("error", {})
            message = detail.get("message") if isinstance(detail, dict) else str(detail)
        except (ValueError, AttributeError):
            message = response.text[:200]
        status = response.status_code
        text = f"{method} {path} answered {status}: {message}"
        if status in (401, 403):
            return BackendUnavailableError(text + " (check the key in the store's "
                                           "'api_key: env:VAR')", store=self.store,
                                           backend=self.name)
        if status >= 500 or status == 429:
            return BackendUnavailableError(text, store=self.store, backend=self.name)
        return VectorStoreError(f"{self.name} backend: {text}", store=self.store)

    async def _store_id(self) -> str:
        if self.vector_store_id is None:
            name = self.store or "tollway"
            after: str | None = None
            while self.vector_store_id is None:
                params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
                page = await self._call("GET", "/vector_stores", params=params)
                for item in page.get("data", []):
                    if item.get("name") == name:
                        self.vector_store_id = str(item["id"])
                        break
                else:
                    if page.get("has_more") and page.get("last_id"):
                        after = page["last_id"]
                        continue
                    made = await self._call("POST", "/vector_stores",
                                            json={"name": name, **self.create_fields})
                    self.vector_store_id = str(made["id"])
        return self.vector_store_id

    # ------------------------------------------------------------------ protocol

    async def add_chunks(self, chunks: list[Chunk], vectors: list[list[float]]) -> None:
        raise NotImplementedError("a managed backend embeds itself: use add_files")

    async def add_files(self, documents: list[DocumentInput]) -> list[Chunk]:
        vs = await self._store_id()
        out: list[Chunk] = []
        for doc in documents:
            attrs = _attributes(doc, self.store)
            uploaded = await self._call(
                "POST", "/files", data={"purpose": "assistants"},
                files={"file": (doc.name.replace("text:", "text-") or "document.txt",
                                doc.data, doc.media_type)})
            file_id = str(uploaded["id"])
            await self._call("POST", f"/vector_stores/{vs}/files",
                             json={"file_id": file_id, "attributes": attrs})
            await self._wait(vs, file_id, doc.name)
            await self._drop_older(vs, doc.name, keep=file_id)
            try:
                text = doc.data.decode("utf-8")
            except UnicodeDecodeError:
                text = ""
            out.append(Chunk(file_id, text, attrs, doc.name))
        return out

    async def _wait(self, vs: str, file_id: str, name: str) -> None:
        deadline = time.monotonic() + self.ingest_timeout
        while True:
            item = await self._call("GET", f"/vector_stores/{vs}/files/{file_id}")
            status = item.get("status")
            if status == "completed":
                return
            if status in ("failed", "cancelled"):
                err = item.get("last_error") or {}
                raise VectorStoreError(
                    f"{self.name} backend could not ingest {name} ({file_id}): {status}, "
                    f"{err.get('code', '')} {err.get('message', '')}".rstrip(), store=self.store)
            if time.monotonic() >= deadline:
                raise VectorStoreError(
                    f"{name} ({file_id}) is still {status!r} after {self.ingest_timeout:g} s; "
                    "it may finish later (raise options.ingest_timeout to wait longer)",
                    store=self.store)
            await asyncio.sleep(self.poll_interval)

    async def _drop_older(self, vs: str, source: str, keep: str) -> None:
        for item in await self._all_files(vs):
            if item["id"] != keep and (item.get("attributes") or {}).get("source") == source:
                await self._remove(vs, str(item["id"]))

    async def _all_files(self, vs: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100, "order": "asc",
                                      **({"after": after} if after else {})}
            page = await self._call("GET", f"/vector_stores/{vs}/files", params=params)
            items.extend(page.get("data", []))
            if not page.get("has_more") or not page.get("last_id"):
                return items
            after = page["last_id"]

    async def _remove(self, vs: str, file_id: str) -> bool:
        gone = await self._call("DELETE", f"/vector_stores/{vs}/files/{file_id}", ok404=True)
        if gone is None:
            return False
        await self._call("DELETE", f"/files/{file_id}", ok404=True)  # stop paying storage
        return bool(gone.get("deleted", True))

    async def search(self, query: str, query_vector: list[float] | None, k: int,
                     filters: Filter | None) -> SearchResult:
        vs = await self._store_id()
        body: dict[str, Any] = {"query": query, "max_num_results": k}
        if filters is not None:
            body["filters"] = openai_filter(filters)
        page = await self._call("POST", f"/vector_stores/{vs}/search", json=body)
        hits = []
        for item in page.get("data", [])[:k]:
            text = "\n".join(c.get("text", "") for c in item.get("content") or []
                             if c.get("type") == "text")
            attrs = dict(item.get("attributes") or {})
            chunk = Chunk(str(item["file_id"]), text, attrs,
                          attrs.get("source") or item.get("filename"))
            hits.append(ScoredChunk(chunk, float(item.get("score", 0.0))))
        return SearchResult(hits, self.search_fee_nanos)

    async def delete(self, ids: list[str] | None, filters: Filter | None) -> int:
        vs = await self._store_id()
        if filters is not None:
            chosen = [str(f["id"]) for f in await self._all_files(vs)
                      if matches(filters, dict(f.get("attributes") or {}))
                      and (ids is None or f["id"] in ids)]
        else:
            chosen = list(dict.fromkeys(ids or []))
        count = 0
        for file_id in chosen:
            count += await self._remove(vs, file_id)
        return count

    async def list(self, limit: int, after: str | None) -> ChunkPage:
        vs = await self._store_id()
        params: dict[str, Any] = {"limit": limit, "order": "asc",
                                  **({"after": after} if after else {})}
        page = await self._call("GET", f"/vector_stores/{vs}/files", params=params)
        chunks = []
        for item in page.get("data", []):
            attrs = dict(item.get("attributes") or {})
            chunks.append(Chunk(str(item["id"]), "", attrs, attrs.get("source")))
        more = page.get("has_more") and chunks
        return ChunkPage(chunks, chunks[-1].id if more else None)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
