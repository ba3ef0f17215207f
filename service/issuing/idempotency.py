"""Idempotency-Key support: a retried request by the same caller gets the same answer, minted once.

Keys are scoped to the caller (issuer + subject), so one caller can never read another's answer.
A first request claims the key with a short-lived "pending" marker; the finished answer replaces it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from service.errors import IdempotencyInProgress, IdempotencyKeyReused
from service.metrics import Metrics
from service.ratelimit.deadline import RedisDeadline
from service.ratelimit.failures import REDIS_FAILURES, MalformedReply, RedisErrors


class StoredAnswer(msgspec.Struct, frozen=True):
    """A finished response kept for replay, or (pending=True) the claim of a request still running."""

    request_hash: str
    status: int = 0
    body: bytes = b""
    profile: str = ""
    pending: bool = False
    claim: str = ""  # a pending marker's own id: a BEGIN sent again (a lost reply) finds its own claim


class IdempotencyStoreUnavailableError(Exception):
    """The store could not be reached in time."""


@dataclass(frozen=True, slots=True)
class Claim:
    """Outcome of `begin`: either we own the key now ("claimed") or a stored answer to replay."""

    kind: Literal["claimed", "replay"]
    answer: StoredAnswer | None = None


def store_key(prefix: str, caller_key: str, idempotency_key: str) -> str:
    """The storage key: hashed so no caller data or oversized key reaches Redis."""
    digest = hashlib.sha256(f"{caller_key}\x1f{idempotency_key}".encode()).hexdigest()[:32]
    return f"{prefix}:idem:{{{digest}}}"


def _resolve(raw: bytes, request_hash: str) -> Claim:
    decoded = msgspec.json.decode(raw, type=StoredAnswer)
    if decoded.request_hash != request_hash:
        raise IdempotencyKeyReused
    if decoded.pending:
        raise IdempotencyInProgress(retry_after=1.0)
    return Claim("replay", decoded)


class IdempotencyStore(Protocol):
    """Where answers for Idempotency-Key replays live (Redis, or memory in dev mode)."""

    async def begin(self, key: str, request_hash: str, pending_ttl: float) -> Claim:
        """Claim `key` or return the stored answer; raises on a mismatched body or a request in progress."""
        ...

    async def complete(self, key: str, answer: StoredAnswer, ttl: float) -> None:
        """Store the finished answer."""
        ...

    async def abandon(self, key: str) -> None:
        """Release a claim whose request failed, so a retry can try again."""
        ...


class MemoryIdempotencyStore:
    """Per-process store for dev mode and the Redis fail-open fallback; bounded in size."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._items: dict[str, tuple[float, bytes]] = {}
        self._max = max_entries

    def _get(self, key: str) -> bytes | None:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        return item[1]

    def _put(self, key: str, value: bytes, ttl: float) -> None:
        if len(self._items) >= self._max:
            now = time.monotonic()
            for k in [k for k, (exp, _) in self._items.items() if exp < now] or list(self._items)[:1000]:
                self._items.pop(k, None)
        self._items[key] = (time.monotonic() + ttl, value)

    async def begin(self, key: str, request_hash: str, pending_ttl: float) -> Claim:
        """See IdempotencyStore.begin."""
        raw = self._get(key)
        if raw is not None:
            return _resolve(raw, request_hash)
        self._put(key, msgspec.json.encode(StoredAnswer(request_hash, pending=True)), pending_ttl)
        return Claim("claimed")

    async def complete(self, key: str, answer: StoredAnswer, ttl: float) -> None:
        """See IdempotencyStore.complete."""
        self._put(key, msgspec.json.encode(answer), ttl)

    async def abandon(self, key: str) -> None:
        """See IdempotencyStore.abandon."""
        self._items.pop(key, None)


_BEGIN = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
"""


class RedisIdempotencyStore:
    """Shared store: every replica sees the same claims and answers."""

    def __init__(self, client: aioredis.Redis | RedisCluster, timeout: float, metrics: Metrics | None = None) -> None:
        self._client = client
        self._timeout = timeout
        self._errors = RedisErrors(metrics)
        self._begin = client.register_script(_BEGIN)

    async def begin(self, key: str, request_hash: str, pending_ttl: float) -> Claim:
        """See IdempotencyStore.begin; one round trip."""
        claim = secrets.token_hex(8)
        marker = msgspec.json.encode(StoredAnswer(request_hash, pending=True, claim=claim))
        try:
            async with RedisDeadline(self._timeout):
                raw = await self._begin(keys=[key], args=[marker, max(1, int(pending_ttl * 1000))])
            if raw is None or raw == marker:  # ours: the client sent BEGIN again after a lost reply
                return Claim("claimed")
            try:
                return _resolve(raw, request_hash)
            except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
                raise MalformedReply("The stored Idempotency-Key answer is not one livetoken wrote.") from None
        except REDIS_FAILURES as exc:
            self._errors.count("idempotency", exc)
            raise IdempotencyStoreUnavailableError(type(exc).__name__) from None

    async def complete(self, key: str, answer: StoredAnswer, ttl: float) -> None:
        """See IdempotencyStore.complete."""
        try:
            async with RedisDeadline(self._timeout):
                await self._client.set(key, msgspec.json.encode(answer), px=max(1, int(ttl * 1000)))
        except REDIS_FAILURES as exc:
            self._errors.count("idempotency", exc)
            raise IdempotencyStoreUnavailableError(type(exc).__name__) from None

    async def abandon(self, key: str) -> None:
        """See IdempotencyStore.abandon; best effort (the pending marker expires anyway)."""
        try:
            async with RedisDeadline(self._timeout):
                await self._client.delete(key)
        except REDIS_FAILURES as exc:
            self._errors.count("idempotency", exc)
