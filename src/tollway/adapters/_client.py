"""The tollway Model behind a framework object, built from its options or handed over.

Every adapter class (chat models, embeddings, image models) takes either a ready
``tollway.Model`` (``client=``) or a target plus the Model's options; they all build it
here, outside the framework's own validation, so tollway's typed errors (ConfigError,
AuthenticationError...) reach the caller as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tollway.core.errors import ConfigError
from tollway.core.model import Model

__all__ = ["connect"]


def connect(
    owner: str, target: str | None, client: Any, options: Mapping[str, Any] | None = None,
    /, *, guards: Sequence[Any] = (), **fields: Any,
) -> Model:
    """``client`` when given (it must be a tollway.Model), else a Model for ``target``
    with ``options`` (more ``tollway.Model`` keywords) and the ``fields`` that are set
    (None means unset; a set field wins over the same key in ``options``); ``owner``
    names the class in errors."""
    if client is not None:
        if not isinstance(client, Model):
            raise ConfigError(f"client must be a tollway.Model, got {type(client).__name__}")
        return client
    if not target:
        raise ConfigError(
            f"{owner} needs a model to call: model='<alias>' or 'provider/model', "
            "or client=tollway.Model(...)"
        )
    kwargs = dict(options or {})
    kwargs.update((name, value) for name, value in fields.items() if value is not None)
    if guards:
        kwargs["guards"] = tuple(guards)
    return Model(target, **kwargs)
