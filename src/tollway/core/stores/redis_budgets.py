"""Budget counters in Redis: exact across many machines, one round trip per step.

Check-and-reserve on every counter of a call is ONE Lua script (Redis runs a script
atomically), so no interleaving of other clients can slip between the check and the
reservation; settle and release are one script each. Round trips per call: one to
reserve, one to settle (or release).

Layout under the prefix (default ``{tollway:budgets}:``; the braces are a Redis Cluster
hash tag, so every key lives in one slot and the scripts stay valid on a cluster; a
prefix given without braces is wrapped in them):

- ``c:<counter>``: a hash per counter (spent, reserved, running totals, limit and the
  budget / scope / period for ``tollway budgets``); it expires an hour after its period;
- ``h:<hold>``: a hash per live reservation, counter -> amount;
- ``exp``: a sorted set of live holds by expiry time. The reserve script first sweeps
  the holds whose time has passed (a crashed holder's reservation comes back here);
- ``idx``: a sorted set of counters by period end, for listing.

Times come from the caller's clock (so tests control them); keep machine clocks in
sync (NTP) — skew only shifts when a dead holder's reservation is swept. Amounts must
stay below 2**53 (Lua numbers), i.e. about 9 million USD per counter.

``redis`` is imported on first use; the async methods use ``redis.asyncio`` (one client
per event loop), never a thread per call.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from tollway.core.cost.budgets.contract import COUNTER_RETENTION, Charge, CounterState, Denial

__all__ = ["RedisBudgetStore"]

_SWEEP = """
local now = ARGV[1]
local prefix = ARGV[4]
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 256)
for _, hid in ipairs(expired) do
  local hkey = prefix .. 'h:' .. hid
  local entries = redis.call('HGETALL', hkey)
  for j = 1, #entries, 2 do
    local ckey = prefix .. 'c:' .. entries[j]
    if redis.call('EXISTS', ckey) == 1 then
      redis.call('HINCRBY', ckey, 'reserved', -tonumber(entries[j + 1]))
      redis.call('HINCRBY', ckey, 'released_total', entries[j + 1])
    end
  end
  redis.call('DEL', hkey)
end
if #expired > 0 then
  redis.call('ZREM', KEYS[1], unpack(expired))
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])
"""

RESERVE = _SWEEP + """
-- KEYS: exp, idx, hold, counters...   ARGV: now, expires_at, hold_id, prefix, cutoff,
-- retention, then per counter: key, limit, amount, budget, scope, start, end ('' = never)
local n = #KEYS - 3
for i = 1, n do
  local a = 6 + (i - 1) * 7
  local vals = redis.call('HMGET', KEYS[3 + i], 'spent', 'reserved')
  local spent = tonumber(vals[1]) or 0
  local reserved = tonumber(vals[2]) or 0
  if spent + reserved + tonumber(ARGV[a + 3]) > tonumber(ARGV[a + 2]) then
    return {i - 1, spent, reserved}
  end
end
if n == 0 then
  return -1
end
local retention = tonumber(ARGV[6])
for i = 1, n do
  local a = 6 + (i - 1) * 7
  local ckey = KEYS[3 + i]
  redis.call('HINCRBY', ckey, 'reserved', ARGV[a + 3])
  redis.call('HINCRBY', ckey, 'reserved_total', ARGV[a + 3])
  redis.call('HSET', ckey, 'limit', ARGV[a + 2], 'budget', ARGV[a + 4], 'scope', ARGV[a + 5],
             'start', ARGV[a + 6], 'end', ARGV[a + 7])
  redis.call('HSET', KEYS[3], ARGV[a + 1], ARGV[a + 3])
  if ARGV[a + 7] ~= '' then
    redis.call('EXPIREAT', ckey, tonumber(ARGV[a + 7]) + retention)
    redis.call('ZADD', KEYS[2], ARGV[a + 7], ARGV[a + 1])
  else
    redis.call('ZADD', KEYS[2], '+inf', ARGV[a + 1])
  end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIREAT', KEYS[3], math.floor(tonumber(ARGV[2])) + retention)
return -1
"""

SETTLE = """
-- KEYS: exp, hold, counters...   ARGV: hold_id, retention, then per counter: key, actual, end
local n = #KEYS - 2
local out = {}
for i = 1, n do
  local a = 2 + (i - 1) * 3
  local ckey = KEYS[2 + i]
  local actual = tonumber(ARGV[a + 2])
  local amount = redis.call('HGET', KEYS[2], ARGV[a + 1])
  if amount then
    amount = tonumber(amount)
    local used = math.min(actual, amount)
    redis.call('HINCRBY', ckey, 'reserved', -amount)
    redis.call('HINCRBY', ckey, 'released_total', amount - used)
    redis.call('HINCRBY', ckey, 'overrun_total', actual - used)
  else
    redis.call('HINCRBY', ckey, 'overrun_total', ARGV[a + 2])
  end
  out[i] = redis.call('HINCRBY', ckey, 'spent', ARGV[a + 2])
  if ARGV[a + 3] ~= '' and redis.call('TTL', ckey) == -1 then
    redis.call('EXPIREAT', ckey, tonumber(ARGV[a + 3]) + tonumber(ARGV[2]))
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return out
"""

RELEASE = """
-- KEYS: exp, hold, counters...   ARGV: hold_id, then per counter: key
for i = 1, #KEYS - 2 do
  local amount = redis.call('HGET', KEYS[2], ARGV[1 + i])
  if amount and redis.call('EXISTS', KEYS[2 + i]) == 1 then
    redis.call('HINCRBY', KEYS[2 + i], 'reserved', -tonumber(amount))
    redis.call('HINCRBY', KEYS[2 + i], 'released_total', amount)
  end
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

_INT_FIELDS = ("spent", "reserved", "reserved_total", "released_total", "overrun_total")


def _hash_tagged(prefix: str) -> str:
    if "{" in prefix and "}" in prefix:
        return prefix
    return "{" + prefix.rstrip(":") + "}:"


class RedisBudgetStore:
    """The many-machine :class:`~tollway.core.cost.budgets.BudgetStore` on Redis."""

    def __init__(self, url: str, *, prefix: str = "{tollway:budgets}:", **client_options: Any) -> None:
        self.url = url
        self.prefix = _hash_tagged(prefix)
        self._options = client_options
        self._exp = self.prefix + "exp"
        self._idx = self.prefix + "idx"
        self._lock = threading.Lock()
        self._client: Any = None
        self._scripts: tuple[Any, Any, Any] | None = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, ...]] = (
            weakref.WeakKeyDictionary()
        )

    # ------------------------------------------------------------------ clients

    def _sync(self) -> tuple[Any, Any, Any, Any]:
        if self._scripts is None:
            with self._lock:
                if self._scripts is None:
                    import redis

                    client = redis.Redis.from_url(self.url, decode_responses=True, **self._options)
                    self._client = client
                    self._scripts = (
                        client.register_script(RESERVE),
                        client.register_script(SETTLE),
                        client.register_script(RELEASE),
                    )
        return (self._client, *self._scripts)

    def _async(self) -> tuple[Any, Any, Any, Any]:
        loop = asyncio.get_running_loop()
        entry = self._aclients.get(loop)
        if entry is None:
            import redis.asyncio as aredis

            client = aredis.Redis.from_url(self.url, decode_responses=True, **self._options)
            entry = (
                client,
                client.register_script(RESERVE),
                client.register_script(SETTLE),
                client.register_script(RELEASE),
            )
            self._aclients[loop] = entry
        return entry

    # ------------------------------------------------------------------ script arguments

    def _reserve_args(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> tuple[list[str], list[Any]]:
        p = self.prefix
        keys = [self._exp, self._idx, p + "h:" + hold_id]
        args: list[Any] = [repr(now), repr(expires_at), hold_id, p,
                           int(now) - COUNTER_RETENTION, COUNTER_RETENTION]
        for c in charges:
            keys.append(p + "c:" + c.key)
            args += [c.key, c.limit, c.amount, c.budget, c.scope, c.period_start,
                     "" if c.period_end is None else c.period_end]
        return keys, args

    def _settle_args(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int]
    ) -> tuple[list[str], list[Any]]:
        p = self.prefix
        keys = [self._exp, p + "h:" + hold_id]
        args: list[Any] = [hold_id, COUNTER_RETENTION]
        for c, actual in zip(charges, actuals, strict=True):
            keys.append(p + "c:" + c.key)
            args += [c.key, actual, "" if c.period_end is None else c.period_end]
        return keys, args

    def _release_args(self, hold_id: str, charges: Sequence[Charge]) -> tuple[list[str], list[Any]]:
        p = self.prefix
        keys = [self._exp, p + "h:" + hold_id, *(p + "c:" + c.key for c in charges)]
        return keys, [hold_id, *(c.key for c in charges)]

    @staticmethod
    def _denial(result: Any) -> Denial | None:
        if isinstance(result, list):
            return Denial(int(result[0]), int(result[1]), int(result[2]))
        return None

    def _states(self, names: Sequence[str], hashes: Sequence[dict[str, str]]) -> list[CounterState]:
        states = []
        for key, data in zip(names, hashes, strict=True):
            if not data or "budget" not in data:
                continue
            end = data.get("end") or ""
            states.append(CounterState(
                key, data["budget"], data["scope"], int(data["start"]),
                int(end) if end else None, int(data["limit"]),
                *(int(data.get(name) or 0) for name in _INT_FIELDS),
            ))
        return states

    # ------------------------------------------------------------------ contract

    def reserve(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Denial | None:
        _, reserve, _, _ = self._sync()
        keys, args = self._reserve_args(hold_id, charges, expires_at, now)
        return self._denial(reserve(keys=keys, args=args))

    def settle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], now: float,
        *, spent: bool = True,
    ) -> list[int]:
        _, _, settle, _ = self._sync()
        keys, args = self._settle_args(hold_id, charges, actuals)
        return [int(v) for v in settle(keys=keys, args=args)]

    def release(self, hold_id: str, charges: Sequence[Charge], now: float) -> None:
        _, _, _, release = self._sync()
        keys, args = self._release_args(hold_id, charges)
        release(keys=keys, args=args)

    def counters(self, now: float) -> list[CounterState]:
        client, reserve, _, _ = self._sync()
        keys, args = self._reserve_args("-", (), now, now)
        reserve(keys=keys, args=args)  # no charges: only the sweep runs
        names = client.zrangebyscore(self._idx, f"({now!r}", "+inf")
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.prefix + "c:" + name)
        return self._states(names, pipe.execute())

    async def areserve(
        self, hold_id: str, charges: Sequence[Charge], expires_at: float, now: float
    ) -> Denial | None:
        _, reserve, _, _ = self._async()
        keys, args = self._reserve_args(hold_id, charges, expires_at, now)
        return self._denial(await reserve(keys=keys, args=args))

    async def asettle(
        self, hold_id: str, charges: Sequence[Charge], actuals: Sequence[int], now: float,
        *, spent: bool = True,
    ) -> list[int]:
        _, _, settle, _ = self._async()
        keys, args = self._settle_args(hold_id, charges, actuals)
        return [int(v) for v in await settle(keys=keys, args=args)]

    async def arelease(self, hold_id: str, charges: Sequence[Charge], now: float) -> None:
        _, _, _, release = self._async()
        keys, args = self._release_args(hold_id, charges)
        await release(keys=keys, args=args)

    async def acounters(self, now: float) -> list[CounterState]:
        client, reserve, _, _ = self._async()
        keys, args = self._reserve_args("-", (), now, now)
        await reserve(keys=keys, args=args)
        names = await client.zrangebyscore(self._idx, f"({now!r}", "+inf")
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.prefix + "c:" + name)
        return self._states(names, await pipe.execute())

    def close(self) -> None:
        client, self._client, self._scripts = self._client, None, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async client of the running event loop."""
        entry = self._aclients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].aclose()

    def delete_all(self) -> None:
        """Remove every key under this store's prefix (tests, resets)."""
        client, *_ = self._sync()
        batch = list(client.scan_iter(match=self.prefix.replace("{", "\\{").replace("}", "\\}") + "*"))
        for start in range(0, len(batch), 500):
            client.delete(*batch[start:start + 500])
