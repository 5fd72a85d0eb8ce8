"""Per-stream rate windows: a fixed-window counter per (channel, entity) in Redis.

`claim(key, want)` atomically grants up to `limit - used` sends in the current window (which
starts at the first grant and lasts `window_s`), and says when the window reopens. Shared by
every worker, so two notify tasks for one entity cannot both send. `MemoryWindows` is the
in-memory twin for unit tests.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

import redis

from workers.notify.decide import Window

KEY_PREFIX = "couchwatch:notify-window:"

_CLAIM = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used)
if grant < 0 then grant = 0 end
if grant > 0 then
  local n = redis.call('INCRBY', KEYS[1], grant)
  if n == grant then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
end
return {grant, redis.call('PTTL', KEYS[1])}
"""


class Windows(Protocol):
    def claim(self, key: str, want: int, now: datetime) -> Window:
        """Grant up to `want` sends on stream `key` now; say when its window reopens."""
        ...


class RedisWindows:
    """Rate windows in Redis (atomic Lua script; keys expire with their window)."""

    def __init__(self, client: redis.Redis, *, limit: int, window_s: float) -> None:
        self.client, self.limit, self.window_ms = client, limit, int(window_s * 1000)

    def claim(self, key: str, want: int, now: datetime) -> Window:
        granted, ttl_ms = self.client.eval(
            _CLAIM, 1, KEY_PREFIX + key, want, self.limit, self.window_ms
        )
        wait_ms = int(ttl_ms) if int(ttl_ms) > 0 else 0
        return Window(int(granted), now + timedelta(milliseconds=wait_ms))


class MemoryWindows:
    """The in-memory twin of `RedisWindows` (same fixed-window semantics, clock from `now`)."""

    def __init__(self, *, limit: int, window_s: float) -> None:
        self.limit, self.window = limit, timedelta(seconds=window_s)
        self.state: dict[str, tuple[int, datetime]] = {}

    def claim(self, key: str, want: int, now: datetime) -> Window:
        used, ends = self.state.get(key, (0, now))
        if ends <= now:
            used, ends = 0, now
        granted = max(0, min(want, self.limit - used))
        if granted and used == 0:
            ends = now + self.window
        if granted:
            self.state[key] = (used + granted, ends)
        return Window(granted, ends if key in self.state else now)
