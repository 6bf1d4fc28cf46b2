"""Budgets for what a search costs besides its query embedding: the backend's fee.

A managed backend (OpenAI file search: $2.50 per 1,000 calls) charges per search, and
it embeds the query itself, so no Model call passes the guards. Before such a search
:class:`SearchHold` reserves, on every guard the store's embedding Model would carry
(the config's budgets, the gateway's key guard), a :class:`FeeRequest` of exactly the
fee: one request, no tokens, ``fee_nanos`` USD. A budget without room for it denies
before the backend is called; after the backend answered the hold settles to the fee
it reported, and a failed search releases it.

A store that embeds the query through tollway and has no fee reserves nothing here:
its query embedding is the reservation (as before). One that has both (none of the
built-in backends) reserves the fee here first, then the embedding as its own call,
so a ``requests`` budget counts such a search twice.

The deployment the fee is reserved on names the backend kind as its provider and the
store as its model: a budget scoped ``provider: openai`` counts OpenAI's fees, one
scoped ``model: <store>`` a store's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tollway.core.cost.attribution import Attribution, current_attribution
from tollway.core.effects import settle_failed
from tollway.core.media_types import FeeRequest
from tollway.core.tracing import current_trace_id, new_trace_id
from tollway.core.types import Usage

if TYPE_CHECKING:
    from tollway.core.hooks import CallContext, Guard, Hold
    from tollway.core.providers import Deployment

__all__ = ["SearchHold", "fee_deployment"]

_DEPLOYMENTS: dict[tuple[str, str], Deployment] = {}


def fee_deployment(backend: str, store: str) -> Deployment:
    """The stand-in deployment a store's fee is reserved on (built once per store)."""
    key = (backend, store)
    dep = _DEPLOYMENTS.get(key)
    if dep is None:
        from tollway.core.providers import Deployment, ProviderSpec

        spec = ProviderSpec(backend, "openai_chat", None, auth="none", key_required=False,
                            docs=f"{backend} vector store")
        dep = Deployment(f"vector_store/{store}", spec, store, "")
        _DEPLOYMENTS[key] = dep
    return dep


class SearchHold:
    """The reservations of one search's fee on ``guards``; exactly one of settle /
    release ends them (later calls do nothing)."""

    def __init__(self, guards: Sequence[Guard], store: str, backend: str, fee_nanos: int,
                 defaults: Attribution | None) -> None:
        attribution = current_attribution()
        if defaults is not None:
            attribution = defaults.merge(attribution)
        from tollway.core.hooks import CallContext

        self.ctx: CallContext[FeeRequest] = CallContext(
            request=FeeRequest(store, fee_nanos), attribution=attribution,
            trace_id=current_trace_id() or new_trace_id(), stream=False, alias=None,
            started=time.perf_counter(), started_at=datetime.now(UTC), kind="retrieval")
        self.dep = fee_deployment(backend, store)
        self.guards = tuple(guards)
        self.holds: list[Hold] = []
        self._done = False

    def reserve(self) -> None:
        """Reserve on every guard, or release what was taken and raise the denial."""
        try:
            for guard in self.guards:
                self.holds.append(guard.reserve(self.ctx, self.dep))
        except BaseException:
            self.release()
            raise

    async def areserve(self) -> None:
        try:
            for guard in self.guards:
                self.holds.append(await guard.areserve(self.ctx, self.dep))
        except BaseException:
            await self.arelease()
            raise

    def _end(self) -> list[Hold]:
        if self._done:
            return []
        self._done = True
        return self.holds

    # Ending a hold never raises: the search has run (or failed) and the caller gets
    # exactly that. A store that fails here leaves the hold to expire after its TTL (the
    # safe direction) with a BudgetSettleWarning, as a model call's settle does.

    def settle(self, fee_nanos: int) -> None:
        for hold in self._end():
            try:
                hold.settle(Usage(requests=1), fee_nanos)
            except Exception as exc:
                settle_failed(hold, exc, self.ctx.trace_id)

    async def asettle(self, fee_nanos: int) -> None:
        for hold in self._end():
            try:
                await hold.asettle(Usage(requests=1), fee_nanos)
            except Exception as exc:
                settle_failed(hold, exc, self.ctx.trace_id)

    def release(self) -> None:
        for hold in self._end():
            try:
                hold.release()
            except Exception as exc:
                settle_failed(hold, exc, self.ctx.trace_id)

    async def arelease(self) -> None:
        for hold in self._end():
            try:
                await hold.arelease()
            except Exception as exc:
                settle_failed(hold, exc, self.ctx.trace_id)
