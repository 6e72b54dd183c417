"""A moving-window rate limit by key (an address, a phone), shared across processes through Redis
when one is configured, else kept in this process (``limits``)."""

from __future__ import annotations

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string


def limit_storage(redis_url: str | None) -> Storage:
    """Redis's when ``redis_url`` is set (every process counts together), else this process's."""
    if redis_url:
        storage = storage_from_string(f"async+{redis_url}")
        assert isinstance(storage, Storage)
        return storage
    return MemoryStorage()


class Limit:
    """At most ``rule`` (``limits``' notation: ``"20/minute"``, ``"5 per 10 minutes"``) per key."""

    def __init__(self, storage: Storage, rule: str, namespace: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._item: RateLimitItem = parse(rule)
        self._namespace = namespace
        self.per = self._item.get_expiry()  # seconds in the window

    async def hit(self, key: str) -> bool:
        """Count one for ``key``: whether it was within the limit."""
        return await self._limiter.hit(self._item, self._namespace, key)

    async def test(self, key: str) -> bool:
        """Whether one more for ``key`` would be within the limit (counts nothing)."""
        return await self._limiter.test(self._item, self._namespace, key)
