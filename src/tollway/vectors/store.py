"""``tollway.VectorStore``: a named store from ``vector_stores:``, with chunking,
metered embeddings and a ledger row for every search.

Where the money goes:

- ``add`` embeds chunks in batches of ``batch_size`` through :meth:`Model.aembed` (the
  store's ``embedding`` model, under the config's budgets): each batch is reserved
  before it is sent and written to the ledger as an ``embedding`` row attributed with
  ``vector_store=<name>``. A budget refusal raises :class:`BudgetExceededError` before
  that batch is sent; the batches before it are stored (they were paid for), the rest
  are not, and the error says nothing was half-written.
- ``search`` embeds the query (reserved like any call, but not written as its own
  row) and writes one ``retrieval`` row: the query-embedding tokens and cost plus the
  backend's own fee (managed backends that charge per search), under the caller's
  trace id, so retrieval and the model calls of one agent run share a trace. The fee
  is reserved on the same guards before the search and settled after it
  (:mod:`tollway.vectors.fees`): a budget without room for it denies first.

Every backend call runs on the store's own loop thread (:mod:`tollway.vectors.runner`),
so the sync and async methods share one backend.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tollway.core.logs import logger
from tollway.core.tracing import current_trace_id, trace
from tollway.vectors.chunking import Chunker
from tollway.vectors.errors import UnknownVectorStoreError, VectorStoreError
from tollway.vectors.filters import parse_filter
from tollway.vectors.ingest import Document, chunker_of, documents_of, split_documents
from tollway.vectors.runner import LoopThread
from tollway.vectors.types import AddResult, Chunk, ChunkPage, ScoredChunk, SearchResult

if TYPE_CHECKING:
    from tollway.core.config import TollwaySettings
    from tollway.core.config.schema import VectorStoreSpec
    from tollway.core.cost.attribution import Attribution
    from tollway.core.cost.ledger import Ledger
    from tollway.core.cost.records import CallRecord
    from tollway.core.hooks import Guard
    from tollway.core.media_types import EmbeddingResponse
    from tollway.core.model import Model
    from tollway.vectors.backend import VectorBackend
    from tollway.vectors.fees import SearchHold
    from tollway.vectors.filters import Filter

__all__ = ["VectorStore"]

log = logger("tollway.vectors")

_UNSET: Any = object()
_ZERO: int | None = 0
MAX_K = 100


class VectorStore:
    """One named vector store. ``VectorStore("docs")`` reads ``vector_stores.docs`` of
    the config (``config=``: a path, a mapping of the file's shape, TollwaySettings, or
    None to discover ``tollway.yaml`` as :class:`Model` does).

    Overrides (mostly for tests and code-only use): ``spec=`` a mapping or
    ``VectorStoreSpec`` instead of the config's entry, ``backend=`` an open backend,
    ``embedding=`` a model alias or ``provider/model`` (instead of the spec's),
    ``embedding_options=`` keywords for that Model (``api_key``, ``api_base``...),
    ``ledger=`` as for Model. (Not a Model instance: the store builds two over one
    route, one that records ingestion rows and one whose cost goes into the retrieval
    row, so a search is never counted twice.)
    """

    def __init__(self, name: str, *, config: Any = None,
                 spec: VectorStoreSpec | Mapping[str, Any] | None = None,
                 backend: VectorBackend | None = None, embedding: str | None = None,
                 embedding_options: Mapping[str, Any] | None = None,
                 ledger: Ledger | str | bool | None = None) -> None:
        from tollway.core.assembly import settings_of

        self.name = name
        self._settings: TollwaySettings | None = settings_of(config)
        self.spec: VectorStoreSpec = self._spec(spec)
        self._backend = backend
        self._embedding_arg = embedding
        self._embedding_options = dict(embedding_options or {})
        self._ledger_arg = ledger
        self._models: tuple[Model, Model] | None = None
        self._fee_guards: tuple[Guard, ...] | None = None
        self._runner = LoopThread(name)
        size = self.spec.chunking.size if self.spec.chunking else None
        overlap = self.spec.chunking.overlap if self.spec.chunking else None
        self.chunker = Chunker(size or Chunker().size,
                               overlap if overlap is not None else Chunker().overlap)

    def __repr__(self) -> str:
        return f"VectorStore({self.name!r}, backend={self.spec.backend!r})"

    def _spec(self, spec: Any) -> VectorStoreSpec:
        from tollway.core.config.schema import VectorStoreSpec

        if isinstance(spec, VectorStoreSpec):
            return spec
        if spec is not None:
            try:
                return VectorStoreSpec.model_validate(dict(spec))
            except ValueError as exc:
                raise VectorStoreError(f"bad spec=: {exc}", store=self.name) from None
        stores = self._settings.vector_stores if self._settings is not None else {}
        if self.name not in stores:
            raise UnknownVectorStoreError(self.name, list(stores))
        return stores[self.name]

    # ------------------------------------------------------------------ parts

    @property
    def backend(self) -> VectorBackend:
        if self._backend is None:
            from tollway.vectors.registry import open_backend

            self._backend = open_backend(self.name, self.spec, self._settings)
        return self._backend

    def _embedders(self) -> tuple[Model, Model]:
        """(ingest model: writes embedding rows; query model: same route and budgets,
        no row of its own, its cost goes into the retrieval row)."""
        if self._models is None:
            from tollway.core.model import Model

            target = self._embedding_arg or self.spec.embedding
            if not target:
                raise VectorStoreError(
                    f"backend {self.spec.backend} needs an embedding model: set "
                    "'embedding:' of the store", store=self.name)
            config = self._settings if self._settings is not None else False
            tags = {"vector_store": self.name}
            opts = self._embedding_options
            ingest = Model(target, config=config, ledger=self._ledger_arg,
                           attribution=tags, **opts)
            query = Model(target, config=config, ledger=False, attribution=tags, **opts)
            self._models = (ingest, query)
        return self._models

    @property
    def ledger(self) -> Ledger | None:
        """Where retrieval rows go: the embedding model's ledger (the config's)."""
        if self.backend.embeds_itself and self._embedding_arg is None \
                and not self.spec.embedding:
            if self._ledger_arg is False:
                return None
            if self._ledger_arg is None or self._ledger_arg is True \
                    or isinstance(self._ledger_arg, str):
                from tollway.core.stores.open import shared_ledger

                target = self._ledger_arg if isinstance(self._ledger_arg, str) else (
                    self._settings.ledger_target if self._settings is not None else None)
                if target is False:
                    return None
                return shared_ledger(target if isinstance(target, str) else None)
            return self._ledger_arg
        return self._embedders()[0].ledger

    def _limit(self, k: int) -> int:
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
            raise VectorStoreError(f"k is an int from 1 to {MAX_K}, got {k!r}", store=self.name)
        return k

    def _filter(self, filters: Any) -> Filter | None:
        return parse_filter(filters, store=self.name)

    # ------------------------------------------------------------------ add

    def add(self, texts: str | Sequence[str] | None = None, *, files: Sequence[Any] | None = None,
            metadata: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
            ids: Sequence[str] | None = None, chunking: Any = None) -> AddResult:
        """Chunk, embed and store ``texts`` and/or ``files`` (paths or ``(name,
        bytes)``); ``metadata`` one mapping for all or one per document (texts first,
        then files); ``ids`` one per document (chunks get ``<id>#<n>``). Managed
        backends take the documents whole. Returns the ids, chunks and embedding cost."""
        docs = documents_of(texts, files, metadata, ids, self.name)
        if self.backend.embeds_itself:
            return self._runner.run(self._add_managed(docs))
        chunks = split_documents(docs, chunker_of(chunking, self.chunker), self.name)
        with trace() as tid:
            tokens, cost = 0, _ZERO
            for batch in self._batches(chunks):
                response = self._embedders()[0].embed(
                    [c.text for c in batch], input_type="document",
                    dimensions=self.spec.dimensions)
                self._runner.run(self.backend.add_chunks(batch, response.vectors))
                tokens, cost = _add_cost(tokens, cost, response)
            self._runner.run(self._drop_stale(docs, chunks))
        return AddResult([c.id for c in chunks], chunks, tokens, cost, tid)

    async def aadd(self, texts: str | Sequence[str] | None = None, *,
                   files: Sequence[Any] | None = None,
                   metadata: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
                   ids: Sequence[str] | None = None, chunking: Any = None) -> AddResult:
        docs = documents_of(texts, files, metadata, ids, self.name)
        if self.backend.embeds_itself:
            return await self._runner.arun(self._add_managed(docs))
        chunks = split_documents(docs, chunker_of(chunking, self.chunker), self.name)
        with trace() as tid:
            tokens, cost = 0, _ZERO
            for batch in self._batches(chunks):
                response = await self._embedders()[0].aembed(
                    [c.text for c in batch], input_type="document",
                    dimensions=self.spec.dimensions)
                await self._runner.arun(self.backend.add_chunks(batch, response.vectors))
                tokens, cost = _add_cost(tokens, cost, response)
            await self._runner.arun(self._drop_stale(docs, chunks))
        return AddResult([c.id for c in chunks], chunks, tokens, cost, tid)

    def _batches(self, chunks: list[Chunk]) -> list[list[Chunk]]:
        size = self.spec.batch_size
        return [chunks[i:i + size] for i in range(0, len(chunks), size)]

    async def _drop_stale(self, docs: list[Document], chunks: list[Chunk]) -> None:
        """A file added again replaces its chunks: once the new ones are stored (same
        ids, upserted), the old ones past the new count are deleted. Done last, so an
        ingestion stopped by a budget or an error leaves the old version searchable."""
        from tollway.vectors.filters import All, Compare

        counts: dict[str, int] = {}
        for chunk in chunks:
            counts[chunk.source or ""] = counts.get(chunk.source or "", 0) + 1
        for doc in docs:
            if doc.from_file:
                await self.backend.delete(None, All((
                    Compare("source", "eq", doc.source),
                    Compare("chunk_index", "gte", counts.get(doc.source, 0)))))

    async def _add_managed(self, docs: list[Document]) -> AddResult:
        with trace() as tid:
            chunks = await self.backend.add_files([d.as_input() for d in docs])
        return AddResult([c.id for c in chunks], chunks, 0, 0, tid)

    # ------------------------------------------------------------------ search

    def search(self, query: str, *, k: int = 5, filters: Mapping[str, Any] | None = None
               ) -> list[ScoredChunk]:
        """The ``k`` chunks closest to ``query`` (best first), restricted by ``filters``
        (see :mod:`tollway.vectors.filters`). Writes one ``retrieval`` ledger row."""
        k, flt = self._limit(k), self._filter(filters)
        _check_query(query, self.name)
        with trace():
            started, clock = _utcnow(), time.perf_counter()
            response: EmbeddingResponse | None = None
            hold = self._fee_hold()
            try:
                if hold is not None:
                    hold.reserve()
                vector = None
                if not self.backend.embeds_itself:
                    response = self._embedders()[1].embed(
                        query, input_type="query", dimensions=self.spec.dimensions)
                    vector = response.vectors[0]
                result = self._runner.run(self.backend.search(query, vector, k, flt))
            except BaseException as exc:
                if hold is not None:
                    hold.release()
                self._record_sync(self._row(started, clock, response, None, exc))
                raise
            self._record_sync(self._row(started, clock, response, result, None))
            if hold is not None:  # after the row: a failing store loses nothing
                hold.settle(result.backend_fee_nanos)
        return result.hits

    async def asearch(self, query: str, *, k: int = 5,
                      filters: Mapping[str, Any] | None = None) -> list[ScoredChunk]:
        k, flt = self._limit(k), self._filter(filters)
        _check_query(query, self.name)
        with trace():
            started, clock = _utcnow(), time.perf_counter()
            response: EmbeddingResponse | None = None
            hold = self._fee_hold()
            try:
                if hold is not None:
                    await hold.areserve()
                vector = None
                if not self.backend.embeds_itself:
                    response = await self._embedders()[1].aembed(
                        query, input_type="query", dimensions=self.spec.dimensions)
                    vector = response.vectors[0]
                result = await self._runner.arun(self.backend.search(query, vector, k, flt))
            except BaseException as exc:
                if hold is not None:
                    await hold.arelease()
                await self._record_async(self._row(started, clock, response, None, exc))
                raise
            await self._record_async(self._row(started, clock, response, result, None))
            if hold is not None:  # after the row: a failing store loses nothing
                await hold.asettle(result.backend_fee_nanos)
        return result.hits

    def _fee_hold(self) -> SearchHold | None:
        """The reservation of this search's backend fee (see :mod:`tollway.vectors.fees`):
        for backends that embed the query themselves (no embedding call passes the
        guards) or charge a fee; None when the query embedding is the only cost."""
        backend = self.backend
        fee = int(getattr(backend, "search_fee_nanos", 0) or 0)
        if not backend.embeds_itself and fee == 0:
            return None
        guards = self._guards()
        if not guards:
            return None
        from tollway.vectors.fees import SearchHold

        return SearchHold(guards, self.name, self.spec.backend, fee, self._defaults())

    def _guards(self) -> tuple[Guard, ...]:
        """The guards the store's embedding Model carries: the config's budgets, then
        those of ``embedding_options['guards']`` (the gateway's key guard)."""
        if self._fee_guards is None:
            from tollway.core.assembly import guards

            config = guards(self._settings) if self._settings is not None else ()
            self._fee_guards = (*config, *self._embedding_options.get("guards", ()))
        return self._fee_guards

    def _defaults(self) -> Attribution:
        from tollway.core.cost.attribution import Attribution

        base = Attribution.of(self._settings.attribution) if (
            self._settings is not None and self._settings.attribution) else Attribution()
        return base.merge({"vector_store": self.name})

    def _row(self, started: datetime, clock: float, response: EmbeddingResponse | None,
             result: SearchResult | None, exc: BaseException | None) -> CallRecord | None:
        """The retrieval row, also for a failed search (status: the error class; cost:
        what was paid before it failed, 0 when the query embedding was refused by a
        budget or failed, since the query model writes no row of its own)."""
        from tollway.core.cost.attribution import current_attribution
        from tollway.core.cost.records import CallRecord
        from tollway.core.errors import scrub
        from tollway.core.types import Usage

        fee = result.backend_fee_nanos if result is not None else 0
        emb = response.cost_nanos if response is not None else 0
        record = CallRecord(
            time=started, kind="retrieval", trace_id=current_trace_id() or "",
            provider=self.spec.backend, model=self.name,
            deployment=response.deployment if response is not None else None,
            alias=(response.model if response is not None else None),
            usage=response.usage if response is not None else Usage(requests=0 if exc else 1),
            cost_nanos=None if emb is None else emb + fee,
            latency_ms=(time.perf_counter() - clock) * 1000,
            status="ok" if exc is None else type(exc).__name__,
            error=None if exc is None else scrub(str(exc), 300),
        )
        current_attribution().fill(record)
        record.attribution = {**record.attribution, "vector_store": self.name,
                              "hits": len(result.hits) if result is not None else 0,
                              "backend_fee_nanos": fee}
        return record

    def _record_sync(self, record: CallRecord | None) -> None:
        ledger = self.ledger if record is not None else None
        if ledger is None or record is None:
            return
        try:
            ledger.record(record)
        except Exception:  # the search happened: a lost row is logged, never raised
            log.exception("could not write the retrieval row of vector store %r", self.name)

    async def _record_async(self, record: CallRecord | None) -> None:
        ledger = self.ledger if record is not None else None
        if ledger is None or record is None:
            return
        try:
            await ledger.arecord(record)
        except Exception:
            log.exception("could not write the retrieval row of vector store %r", self.name)

    # ------------------------------------------------------------------ delete / list

    def delete(self, ids: Sequence[str] | None = None, *,
               filters: Mapping[str, Any] | None = None) -> int:
        """Delete chunks by id and/or ``filters`` (both: chunks matching both); returns
        how many were deleted."""
        ids_, flt = self._delete_args(ids, filters)
        return self._runner.run(self.backend.delete(ids_, flt))

    async def adelete(self, ids: Sequence[str] | None = None, *,
                      filters: Mapping[str, Any] | None = None) -> int:
        ids_, flt = self._delete_args(ids, filters)
        return await self._runner.arun(self.backend.delete(ids_, flt))

    def _delete_args(self, ids: Any, filters: Any) -> tuple[list[str] | None, Filter | None]:
        if isinstance(ids, str):
            ids = [ids]
        flt = self._filter(filters)
        if ids is None and flt is None:
            raise VectorStoreError("delete needs ids or filters= (to empty the store, "
                                   "delete with filters={'chunk_index': {'$gte': 0}})",
                                   store=self.name)
        return (list(ids) if ids is not None else None), flt

    def list(self, *, limit: int = 100, after: str | None = None) -> ChunkPage:
        """Up to ``limit`` chunks (1..1000) in id order after the id ``after``."""
        return self._runner.run(self.backend.list(self._page(limit), after))

    async def alist(self, *, limit: int = 100, after: str | None = None) -> ChunkPage:
        return await self._runner.arun(self.backend.list(self._page(limit), after))

    def _page(self, limit: int) -> int:
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise VectorStoreError(f"limit is an int from 1 to 1000, got {limit!r}",
                                   store=self.name)
        return limit

    # ------------------------------------------------------------------ tools / close

    def as_tool(self, *, name: str | None = None, k: int = 5,
                description: str | None = None) -> Any:
        """A ``file_search``-style :class:`tollway.mcp.FunctionTool` over this store for
        ``run_tools(..., tools=[store.as_tool()])`` (see :mod:`tollway.vectors.tool`)."""
        from tollway.vectors.tool import retrieval_tool

        return retrieval_tool(self, name=name, k=k, description=description)

    def close(self) -> None:
        """Close the backend and stop the store's loop thread."""
        if self._backend is not None:
            try:
                self._runner.run(self._backend.close())
            finally:
                self._runner.stop()

    async def aclose(self) -> None:
        if self._backend is not None:
            try:
                await self._runner.arun(self._backend.close())
            finally:
                self._runner.stop()

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> VectorStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _check_query(query: Any, store: str) -> None:
    if not isinstance(query, str) or not query.strip():
        raise VectorStoreError("the query is a non-empty string", store=store)


def _add_cost(tokens: int, cost: int | None,
              response: EmbeddingResponse) -> tuple[int, int | None]:
    tokens += response.usage.input_tokens or 0
    if cost is None or response.cost_nanos is None:
        return tokens, None
    return tokens, cost + response.cost_nanos


def _utcnow() -> datetime:
    return datetime.now(UTC)
