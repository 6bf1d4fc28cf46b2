"""Errors of vector stores, all under :class:`tollway.errors.TollwayError`.

Each names the store and says how to fix the cause; none carries a key or a document's
text beyond a short excerpt.
"""

from __future__ import annotations

from tollway.core.errors import TollwayError, scrub

__all__ = [
    "BackendUnavailableError",
    "BadFilterError",
    "UnknownVectorStoreError",
    "VectorStoreError",
]


class VectorStoreError(TollwayError):
    """Base of the vector-store errors; ``store`` names the configured store (or None)."""

    def __init__(self, message: str, *, store: str | None = None) -> None:
        self.store = store
        prefix = f"vector store {store!r}: " if store else ""
        super().__init__(prefix + scrub(message, 600))


class UnknownVectorStoreError(VectorStoreError, KeyError):
    """No store of that name in ``vector_stores:`` of the configuration."""

    def __init__(self, store: str, known: list[str]) -> None:
        self.known = known
        names = ", ".join(sorted(known)) or "none are configured"
        VectorStoreError.__init__(
            self, f"no such store in 'vector_stores:' (known: {names}); add it to "
            "tollway.yaml or pass backend= to VectorStore", store=store)

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BackendUnavailableError(VectorStoreError):
    """The backend could not do its part: its server is down, its file unwritable, or
    its Python package is not installed (the message names the extra to install)."""

    def __init__(self, message: str, *, store: str | None = None,
                 backend: str | None = None) -> None:
        self.backend = backend
        super().__init__(f"{backend} backend: {message}" if backend else message,
                         store=store)


class BadFilterError(VectorStoreError, ValueError):
    """A ``filters=`` value is not in the filter language (see :mod:`tollway.vectors.filters`)."""

    def __init__(self, message: str, *, store: str | None = None,
                 path: str = "") -> None:
        self.path = path
        where = f" at {path}" if path else ""
        super().__init__(f"bad filter{where}: {message}", store=store)
