"""The fields every tollway class for LangChain shares: which Model it calls and how
its calls are attributed.

TollwayChatModel and TollwayEmbeddings take the same connection fields; both build
their Model with :meth:`TollwayConnection._tollway_client` after pydantic validation,
so tollway's typed errors (ConfigError, AuthenticationError...) reach the caller as
they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from tollway.adapters._client import connect
from tollway.core.cost.attribution import Attribution
from tollway.core.model import Model

__all__ = ["TollwayConnection", "collect_model_kwargs"]


def collect_model_kwargs(values: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """``values`` with every key that is not a field (``frequency_penalty=...``) moved
    into ``model_kwargs``: the LangChain convention for provider parameters."""
    extra = {k: v for k, v in values.items() if k not in known}
    if not extra:
        return values
    kept = {k: v for k, v in values.items() if k in known}
    kept["model_kwargs"] = {**(values.get("model_kwargs") or {}), **extra}
    return kept


class TollwayConnection(BaseModel):
    """Mixed in before the LangChain base class."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    model: str | None = None
    """An alias from tollway.yaml or ``provider/model``."""
    client: Any = Field(default=None, exclude=True)
    """A ready tollway.Model; when given, the connection fields below are ignored."""

    api_base: str | None = None
    api_key: SecretStr | None = Field(default=None, exclude=True)
    timeout: float | None = None
    ledger: Any = Field(default=None, exclude=True)
    """A Ledger, a ledger target (path, ``sqlite:///...``, ``memory``) or False."""
    guards: Sequence[Any] = Field(default=(), exclude=True)
    client_options: dict[str, Any] = Field(default_factory=dict, exclude=True)
    """More ``tollway.Model`` keyword arguments (headers, config, prices, route...)."""

    org: str | None = None
    project: str | None = None
    user: str | None = None
    attribution: dict[str, Any] = Field(default_factory=dict)
    """Extra attribution keys recorded with every call."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Provider parameters passed into the request body untouched."""

    _client: Model = PrivateAttr()
    _defaults: Attribution = PrivateAttr()

    def _tollway_client(self, owner: str) -> Model:
        """The Model to call (``client``, or one built from the fields); fills ``model``
        with its target when only a client was given."""
        client = connect(
            owner, self.model, self.client, self.client_options, guards=self.guards,
            api_key=self.api_key.get_secret_value() if self.api_key else None,
            api_base=self.api_base, timeout=self.timeout, ledger=self.ledger,
        )
        if self.model is None:
            self.model = client.target
        return client

    def _attribution_defaults(self, tags: Any) -> Attribution:
        return Attribution.of(self.attribution, org=self.org, project=self.project,
                              user=self.user, tags=tags or None)
