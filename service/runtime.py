"""Everything a running app owns (connections, caches, the minter), opened and closed by the lifespan."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import RedisCluster

from service.api.schemas import Readiness
from service.auth import JWTVerifier
from service.config import Settings
from service.errors import ServiceShuttingDown
from service.idempotency import IdempotencyStore, MemoryIdempotencyStore, RedisIdempotencyStore
from service.issuing import TokenIssuer
from service.metrics import Metrics
from service.ratelimit import FailoverRateLimiter, RateLimiter, build_limiter
from service.ratelimit.redis import blocking_pool
from service.upstream.minter import TokenMinter

log = structlog.get_logger("livetoken")


@dataclass
class Runtime:
    """The app's live objects. Built by `open_runtime`, reached by handlers as `app.state.runtime`."""

    settings: Settings
    metrics: Metrics
    verifier: JWTVerifier
    limiter: RateLimiter
    minter: TokenMinter
    issuer: TokenIssuer
    draining: bool = False
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack, repr=False)

    def refuse_while_draining(self) -> None:
        """New token requests are refused once shutdown has begun."""
        raise ServiceShuttingDown(retry_after=1.0)

    async def readiness(self) -> Readiness:
        """Config is loaded by construction; report the limiter, circuit and JWKS state."""
        limiter_state = await _limiter_state(self.limiter)
        jwks = self.verifier.jwks_status()
        ready = not self.draining and limiter_state != "unavailable" and jwks != "unavailable"
        return Readiness(
            status="ready" if ready else "not_ready",
            config="loaded",
            rate_limiter=limiter_state,
            rate_limiter_backend=self.limiter.backend,  # type: ignore[arg-type]  # "redis" | "memory" by contract
            upstream_circuit=self.minter.circuit.state,
            jwks=jwks,
        )

    async def aclose(self) -> None:
        """Close every connection this runtime opened, in reverse order."""
        await self._stack.aclose()


async def _limiter_state(limiter: RateLimiter) -> Literal["ok", "fallback", "unavailable"]:
    if isinstance(limiter, FailoverRateLimiter):
        return await limiter.state()
    return "ok" if await limiter.ping() else "unavailable"


async def open_runtime(settings: Settings, metrics: Metrics) -> Runtime:
    """Open connections and build the service objects; on failure, close whatever was opened."""
    stack = AsyncExitStack()
    try:
        http = await stack.enter_async_context(
            httpx.AsyncClient(timeout=httpx.Timeout(5.0), follow_redirects=False, trust_env=False)
        )
        verifier = JWTVerifier(settings.file.issuers, settings.env.issuer_secrets, http, metrics)
        await verifier.start()
        redis_url = settings.env.redis_url.reveal() if settings.env.redis_url else None
        limits = settings.file.limits
        limiter = build_limiter(limits, redis_url, metrics, cluster=limits.redis_cluster)
        stack.push_async_callback(limiter.aclose)
        idempotency: IdempotencyStore
        if redis_url is None:
            idempotency = MemoryIdempotencyStore()
        else:
            timeout = float(settings.file.limits.redis_timeout)
            opts: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
            client: aioredis.Redis | RedisCluster = (
                RedisCluster.from_url(redis_url, **opts)
                if limits.redis_cluster
                else aioredis.Redis.from_pool(blocking_pool(redis_url, timeout))
            )
            stack.push_async_callback(client.aclose)
            idempotency = RedisIdempotencyStore(client, timeout)
        assert settings.env.gemini_api_key is not None
        minter = TokenMinter(
            api_key=settings.env.gemini_api_key,
            base_url=settings.env.gemini_base_url,
            ca_file=settings.env.gemini_ca_file,
            profiles=settings.profiles,
            upstream=settings.file.upstream,
            metrics=metrics,
        )
        stack.push_async_callback(minter.aclose)
        issuer = TokenIssuer(settings, limiter, idempotency, minter, metrics)
    except BaseException:
        await stack.aclose()
        raise
    return Runtime(settings, metrics, verifier, limiter, minter, issuer, _stack=stack)
