"""What one gateway process holds: settings, keys, the key guard, Models, metrics.

The gateway does no model work itself. For each request it authenticates the key
(:mod:`tollway.gateway.auth`), checks the model is one the key may use, opens an
attribution scope for the key, and calls the same :class:`~tollway.core.model.Model`
a Python program would (one per alias or ``provider/model``, built once, carrying the
config's guards and ledger plus the :class:`~tollway.gateway.guard.KeyGuard`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tollway.core.assembly import price_book
from tollway.core.cost.attribution import Attribution
from tollway.core.errors import UnknownModelError
from tollway.core.logs import logger
from tollway.gateway.config import GatewaySpec, gateway_spec
from tollway.gateway.errors import GatewayError
from tollway.gateway.guard import KeyGuard
from tollway.gateway.key_cache import KeyCache
from tollway.gateway.key_store import KeyStore, open_key_store
from tollway.gateway.mcp_hub import GatewayMCP
from tollway.gateway.metrics import Metrics
from tollway.gateway.metrics_share import METRICS_DIR_ENV, MetricsShare

if TYPE_CHECKING:
    from tollway.core.config import TollwaySettings
    from tollway.core.cost.budgets import BudgetStore
    from tollway.core.model import Model
    from tollway.gateway.files import FileStore
    from tollway.gateway.keys import VirtualKey

__all__ = ["Gateway"]

log = logger("tollway.gateway")


class Gateway:
    def __init__(
        self,
        settings: TollwaySettings,
        *,
        spec: GatewaySpec | None = None,
        key_store: KeyStore | None = None,
        budget_store: BudgetStore | None = None,
    ) -> None:
        self.settings = settings
        self.spec = spec or gateway_spec(settings)
        self.keys: KeyCache | None = None
        if self.spec.auth == "keys":
            store = key_store or open_key_store(self.spec.keys_target())
            self.keys = KeyCache(store, stale_after=max(2.0, 4 * self.spec.key_refresh_seconds))
        self.guard = KeyGuard(self._budget_store_factory(budget_store),
                              prices=price_book(settings), clock=settings.clock)
        self.metrics = Metrics()
        shared = os.environ.get(METRICS_DIR_ENV)
        self.metrics_share = MetricsShare(shared, self.metrics) if shared else None
        self.admin_key = self.spec.admin_key()
        self.mcp = GatewayMCP(settings, self.spec)
        self.vector_stores: dict[str, Any] = {}
        """Opened ``VectorStore`` objects by name (:mod:`tollway.gateway.vector_routes`)."""
        self._files: FileStore | None = None
        self._models: dict[str, Model] = {}
        self._refresher: asyncio.Task[None] | None = None

    def _budget_store_factory(self, given: BudgetStore | None) -> Callable[[], BudgetStore]:
        def open_store() -> BudgetStore:
            if given is not None:
                return given
            from tollway.core.stores.open import open_budget_store

            spec = self.spec.budget_store if self.spec.budget_store is not None else (
                self.settings.budget_store)
            return open_budget_store(spec)

        return open_store

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Read the key version once, then keep it fresh in the background; publish
        this worker's metrics for the others when there are several."""
        if self.metrics_share is not None:
            self.metrics_share.start()
        if self.keys is not None:
            await self.keys.arefresh()
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_keys())

    async def _refresh_keys(self) -> None:
        assert self.keys is not None
        interval = self.spec.key_refresh_seconds
        while True:
            await asyncio.sleep(interval)
            await self.keys.arefresh()

    def metrics_totals(self) -> Metrics:
        """The metrics ``/metrics`` shows: this process's, summed with its sibling
        workers' when the gateway runs several."""
        if self.metrics_share is None:
            return self.metrics
        return self.metrics_share.totals()

    async def stop(self) -> None:
        if self.metrics_share is not None:
            await self.metrics_share.stop()
        task, self._refresher = self._refresher, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self.mcp.close()
        stores, self.vector_stores = self.vector_stores, {}
        for store in stores.values():
            await store.aclose()
        if self.keys is not None:
            self.keys.store.close()

    @property
    def files(self) -> FileStore:
        """The uploads of ``/v1/files`` (:mod:`tollway.gateway.files`), opened on first use."""
        if self._files is None:
            from tollway.gateway.config import files_root
            from tollway.gateway.files import FileStore

            self._files = FileStore(files_root(self.spec, self.settings.ledger_target))
        return self._files

    # ------------------------------------------------------------------ models

    def model_for(self, key: VirtualKey | None, name: str) -> Model:
        """The Model for ``name`` if the key may use it: 403 when the key may not, 404
        when the config has no such alias (and it is not ``provider/model``)."""
        if key is not None and not key.allows(name):
            raise GatewayError(
                403, f"key {key.id} may not use model {name!r}; it may use "
                f"{', '.join(self.allowed_models(key)) or 'no model'}",
                code="model_not_allowed", param="model",
            )
        model = self._models.get(name)
        if model is None:
            if "/" not in name and name not in self.settings.models:
                raise UnknownModelError(
                    f"no model {name!r} here: the gateway serves "
                    f"{', '.join(self.allowed_models(key)) or 'no model'} (GET /v1/models)"
                )
            from tollway.core.model import Model

            model = Model(name, config=self.settings, guards=[self.guard])
            self._models[name] = model
        return model

    def allowed_models(self, key: VirtualKey | None) -> list[str]:
        """What ``/v1/models`` lists for ``key``: the config's aliases it may use, then
        the ``provider/model`` names it lists explicitly."""
        names = [alias for alias in self.settings.models if key is None or key.allows(alias)]
        if key is not None and key.models is not None:
            names.extend(m for m in key.models if "/" in m and m not in names)
        return names

    # ------------------------------------------------------------------ attribution

    def attribution(self, key: VirtualKey | None, headers: dict[str, str],
                    client_user: Any = None) -> Attribution:
        """The key's attribution, refined by the client within what the key allows: an
        end user (``x-tollway-user`` or the body's ``user``) fills the user field only
        when the key names none (else it is recorded as ``end_user``); tags from
        ``x-tollway-tags: team=ml,feature=search`` never override the key's own tags."""
        fields: dict[str, Any] = {}
        tags: dict[str, str] = {}
        header_tags = headers.get("x-tollway-tags")
        if header_tags:
            for item in header_tags.split(","):
                name, sep, value = item.strip().partition("=")
                if name:
                    tags[name] = value if sep else "true"
        if key is not None:
            fields = {"org": key.org, "project": key.project, "user": key.user, "key": key.id}
            tags.update(key.tags)
        user = headers.get("x-tollway-user") or (client_user if isinstance(client_user, str) else None)
        if user and self.spec.user_header:
            if key is None or key.user is None:
                fields["user"] = user
            else:
                fields["end_user"] = user
        return Attribution.of(fields, tags=tags)
