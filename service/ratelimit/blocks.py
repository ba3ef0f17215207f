"""Blocks: an operator's "no more tokens for this caller (or tenant) for a while", kept where the limiter looks.

A block is one Redis key per blocked subject or tenant, in the same hash tag as that caller's limit keys, so the
limiter's one script sees it in the same round trip (and Redis Cluster keeps them on one slot). It carries a
record for `livetoken blocks` and expires by itself. Dev mode keeps blocks in the memory limiter.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable
from typing import Any, Literal, Protocol, TypeVar

import msgspec

from service.metrics import Metrics
from service.ratelimit.failures import REDIS_FAILURES, RedisErrors
from service.ratelimit.memory import MemoryRateLimiter
from service.ratelimit.redis import RedisClient

MAX_BLOCK_SECONDS = 366 * 86400
T = TypeVar("T")


class BlockRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What a block says: whom, why, since and until when (epoch seconds), and who set it."""

    layer: Literal["subject", "tenant"]
    who: str
    issuer: str | None = None
    reason: str = ""
    created_at: float
    expires_at: float
    by: str = ""


class BlockStoreUnavailableError(Exception):
    """The block store could not be reached in time."""


class BlockStore(Protocol):
    """Where blocks live (Redis, or the dev-mode memory limiter)."""

    async def put(self, block_id: str, record: BlockRecord) -> None:
        """Set (or replace) the block `block_id` until `record.expires_at`."""
        ...

    async def remove(self, block_id: str) -> bool:
        """Lift the block; False when there was none."""
        ...

    async def all(self) -> list[BlockRecord]:
        """Every block in force, soonest to expire first."""
        ...


class RedisBlockStore:
    """Blocks every replica honours on its next request."""

    def __init__(self, client: RedisClient, prefix: str, timeout: float, metrics: Metrics | None = None) -> None:
        self._client = client
        self._prefix = prefix + ":block:"
        self._timeout = timeout
        self._errors = RedisErrors(metrics)

    async def put(self, block_id: str, record: BlockRecord) -> None:
        """See BlockStore.put."""
        ttl_ms = max(1, math.ceil((record.expires_at - time.time()) * 1000))
        await self._call(self._client.set(self._prefix + block_id, msgspec.json.encode(record), px=ttl_ms))

    async def remove(self, block_id: str) -> bool:
        """See BlockStore.remove."""
        return bool(await self._call(self._client.delete(self._prefix + block_id)))

    async def all(self) -> list[BlockRecord]:
        """See BlockStore.all."""

        async def collect() -> list[Any]:
            keys = [key async for key in self._client.scan_iter(match=self._prefix + "*", count=1000)]
            values = [await self._client.get(key) for key in keys]
            return [v for v in values if v is not None]

        raw = await self._call(collect())
        return sorted((msgspec.json.decode(v, type=BlockRecord) for v in raw), key=lambda r: r.expires_at)

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(max(self._timeout, 2.0)):  # an operator's command, not the hot path
                return await awaitable
        except REDIS_FAILURES as exc:
            self._errors.count("blocks", exc)
            raise BlockStoreUnavailableError(type(exc).__name__) from None


class MemoryBlockStore:
    """Dev mode: blocks in the memory limiter of this one process."""

    def __init__(self, limiter: MemoryRateLimiter) -> None:
        self._blocks = limiter.blocks

    async def put(self, block_id: str, record: BlockRecord) -> None:
        """See BlockStore.put."""
        self._blocks[block_id] = (record.expires_at, msgspec.json.encode(record))

    async def remove(self, block_id: str) -> bool:
        """See BlockStore.remove."""
        return self._blocks.pop(block_id, None) is not None

    async def all(self) -> list[BlockRecord]:
        """See BlockStore.all."""
        now = time.time()
        records = [msgspec.json.decode(raw, type=BlockRecord) for until, raw in self._blocks.values() if until > now]
        return sorted(records, key=lambda r: r.expires_at)
