"""The in-process key cache, and how a revocation reaches it within a second.

Looking a key up in the store on every request would put a database round trip on the
hot path; caching it for minutes is how other gateways end up honouring revoked keys
(LiteLLM's users report key limits that stop applying once a key is cached). Here a
cached answer is only trusted while the store's *version* (bumped by every change, see
:mod:`tollway.gateway.key_store`) is the one it was read under:

- :meth:`KeyCache.refresh` reads the version (the gateway runs it every
  ``key_refresh_seconds``, 0.25 s by default, from a background task); a new version
  empties the cache, so the next request reads its key again;
- if the version cannot be read for ``stale_after`` seconds (the store is down), the
  cache stops answering and every lookup goes to the store: a key is never honoured
  on information older than that. Requests then fail with 503 until the store is back.

Unknown secrets are cached too (as None) so a client hammering with a bad key costs one
lookup per version, not one per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tollway.core.logs import logger
from tollway.gateway.key_store import KeyStore
from tollway.gateway.keys import VirtualKey, hash_secret

__all__ = ["KeyCache"]

log = logger("tollway.gateway")

_MAX_ENTRIES = 100_000


class KeyCache:
    def __init__(self, store: KeyStore, *, stale_after: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.stale_after = stale_after
        self._clock = clock
        self._entries: dict[str, VirtualKey | None] = {}
        self._version: int | None = None
        self._checked = float("-inf")

    @property
    def fresh(self) -> bool:
        return self._clock() - self._checked <= self.stale_after

    def refresh(self) -> bool:
        """Read the store's version; drop every cached key when it changed. Returns
        whether the version could be read."""
        try:
            version = self.store.version()
        except Exception as exc:  # the store is down: stop trusting the cache after stale_after
            log.warning("tollway gateway: cannot read the key store version: %s", type(exc).__name__)
            return False
        if version != self._version:
            self._entries = {}
            self._version = version
        self._checked = self._clock()
        return True

    async def arefresh(self) -> bool:
        return await asyncio.to_thread(self.refresh)

    def cached(self, secret: str) -> tuple[bool, VirtualKey | None]:
        """``(hit, key)`` from memory only: the request path's fast lane."""
        if not self.fresh:
            return False, None
        digest = hash_secret(secret)
        entries = self._entries
        if digest in entries:
            return True, entries[digest]
        return False, None

    def lookup(self, secret: str) -> VirtualKey | None:
        """The key for ``secret`` (None for an unknown secret), reading the store on a miss."""
        hit, key = self.cached(secret)
        if hit:
            return key
        digest = hash_secret(secret)
        version_before = self._version
        key = self.store.by_hash(digest)
        if self.fresh and self._version == version_before:
            entries = self._entries
            if len(entries) >= _MAX_ENTRIES:
                entries.clear()
            entries[digest] = key
        return key

    async def alookup(self, secret: str) -> VirtualKey | None:
        hit, key = self.cached(secret)
        if hit:
            return key
        return await asyncio.to_thread(self.lookup, secret)

    def clear(self) -> None:
        self._entries = {}
