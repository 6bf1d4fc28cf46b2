"""Implementations of :class:`tollway.vectors.backend.VectorBackend`, one module each
(see :data:`tollway.vectors.registry.BACKEND_MODULES`)."""
