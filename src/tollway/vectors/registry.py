"""Which code opens which ``backend:``: a table of lazily imported modules.

Each module named here has ``open_backend(name, spec, settings) -> VectorBackend``
(``name`` the store, ``spec`` its :class:`~tollway.core.config.schema.VectorStoreSpec`,
``settings`` the loaded :class:`~tollway.core.config.TollwaySettings` or None). Adding a
backend is a row (or :func:`register_backend` from a plugin), not a branch in the facade.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

from tollway.vectors.errors import BackendUnavailableError

if TYPE_CHECKING:
    from tollway.core.config import TollwaySettings
    from tollway.core.config.schema import VectorStoreSpec
    from tollway.vectors.backend import VectorBackend

__all__ = ["BACKEND_MODULES", "BackendOpener", "open_backend", "register_backend"]

BackendOpener = Callable[[str, "VectorStoreSpec", "TollwaySettings | None"], "VectorBackend"]

BACKEND_MODULES: dict[str, str] = {
    "sqlite": "tollway.vectors.backends.sqlite",
    "chroma": "tollway.vectors.backends.chroma",
    "openai": "tollway.vectors.backends.openai",
    "llama_stack": "tollway.vectors.backends.llama_stack",
}
"""backend name -> module with ``open_backend`` (the managed two are vec-surface's)."""

_OPENERS: dict[str, BackendOpener] = {}


def register_backend(name: str, opener: BackendOpener) -> None:
    """Make ``backend: name`` open with ``opener`` (overrides the table's module)."""
    _OPENERS[name] = opener


def open_backend(name: str, spec: VectorStoreSpec,
                 settings: TollwaySettings | None) -> VectorBackend:
    """Open the backend ``spec.backend`` for the store ``name``."""
    opener = _OPENERS.get(spec.backend)
    if opener is None:
        module_name = BACKEND_MODULES.get(spec.backend)
        if module_name is None:
            raise BackendUnavailableError(
                f"unknown backend {spec.backend!r} (known: "
                f"{', '.join(sorted({*BACKEND_MODULES, *_OPENERS}))})", store=name)
        try:
            module: Any = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("tollway"):
                raise BackendUnavailableError(
                    "this tollway build has no implementation of it", store=name,
                    backend=spec.backend) from exc
            raise
        opener = module.open_backend
    return opener(name, spec, settings)
