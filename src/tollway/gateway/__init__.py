"""``tollway gateway``: an OpenAI- and Anthropic-compatible HTTP server over the same
Model, router, guards and ledger as the Python API, with virtual keys.

``from tollway.gateway import create_app`` gives the ASGI app; ``tollway gateway
--config tollway.yaml`` serves it with uvicorn (see :mod:`tollway.gateway.server`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    from tollway.gateway.app import create_app as build

    return build(*args, **kwargs)
