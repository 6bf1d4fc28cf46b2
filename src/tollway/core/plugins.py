"""Names of packages outside core that add to core's tables when first needed.

Core may not import the packages above it (``tollway.local``...), yet ``Model("local/x")``
must find the in-process provider. The top-level ``tollway`` package fills this map at
import (module names only: nothing is imported until a target names the provider);
``core/providers.py`` imports the module on first use and the module registers itself.
"""

from __future__ import annotations

PROVIDER_MODULES: dict[str, str] = {}
"""Provider name -> module that calls ``providers.register_provider`` when imported."""
