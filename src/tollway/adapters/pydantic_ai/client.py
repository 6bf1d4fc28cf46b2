"""What every tollway class for Pydantic AI shares: the tollway Model it calls, the
name it goes by, the provider it reports, and the attribution it records.

TollwayModel (chat), TollwayEmbeddingModel and TollwayImageGenerationModel take a
target (an alias or ``provider/model``) or ``client=tollway.Model(...)``, plus the same
options: ``org`` / ``project`` / ``user`` / ``tags`` / ``attribution`` (recorded with
every call; an enclosing ``tollway.attribute(...)`` scope overrides them) and any
``tollway.Model`` keyword (``api_key``, ``api_base``, ``timeout``, ``ledger``,
``guards``, ``prices``, ``config``...) to build the Model from the target.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tollway.core.model as core_model
from tollway.adapters._client import connect
from tollway.core.cost.attribution import Attribution

__all__ = ["TollwayClient"]

_ATTRIBUTION = ("org", "project", "user", "tags", "attribution")


class TollwayClient:
    """The tollway side of a Pydantic AI model class (mixed in before the framework base)."""

    _target: str
    _client: core_model.Model
    _defaults: Attribution

    def _connect(self, owner: str, model: str | None, client: core_model.Model | None,
                 options: Mapping[str, Any]) -> None:
        """Set the Model (``client``, else one built for ``model`` from ``options``), the
        target and the attribution defaults (the attribution keys of ``options``)."""
        model_options = {k: v for k, v in options.items() if k not in _ATTRIBUTION}
        guards = model_options.pop("guards", None) or ()
        self._client = connect(owner, model, client, model_options, guards=guards)
        self._target = model or self._client.target
        self._defaults = Attribution.of(
            options.get("attribution"), org=options.get("org"), project=options.get("project"),
            user=options.get("user"), tags=options.get("tags"),
        )

    @property
    def client(self) -> core_model.Model:
        """The tollway Model this class calls (share it with other frameworks or MCP)."""
        return self._client

    @property
    def model_name(self) -> str:
        """The configured target: an alias or ``provider/model``."""
        return self._target

    @property
    def system(self) -> str:
        deployments = self._client.deployments
        return deployments[0].provider.name if deployments else "tollway"

    @property
    def base_url(self) -> str | None:
        deployments = self._client.deployments
        return deployments[0].api_base if deployments else None
