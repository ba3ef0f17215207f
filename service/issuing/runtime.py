"""Everything a running app owns (connections, caches, the minter), opened and closed by the lifespan."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Literal

import httpx
import msgspec
import structlog

from service.auth import JWTVerifier
from service.config import Settings
from service.errors import Overloaded, ServiceShuttingDown
from service.issuing.flow import TokenIssuer
from service.issuing.idempotency import IdempotencyStore, MemoryIdempotencyStore, RedisIdempotencyStore
from service.metrics import Metrics
from service.ratelimit import FailMode, FailoverRateLimiter, RateLimiter, build_limiter, connect_redis
from service.upstream import TokenMinter

log = structlog.get_logger("livetoken")


class Readiness(msgspec.Struct, frozen=True):
    """Readiness: whether this instance should receive traffic, and why."""

    status: Literal["ready", "not_ready"]
    config: Literal["loaded"]
    rate_limiter: Literal["ok", "fallback", "unavailable"]
    rate_limiter_backend: Literal["redis", "memory"]
    upstream_circuit: Literal["closed", "open", "half_open"]
    jwks: Literal["ok", "stale", "unavailable"]


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
    in_flight: int = 0
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack, repr=False)

    def admit(self) -> None:
        """Take one of this process's token-request places, or refuse at once (draining, or at the bound).

        A burst beyond what one process can finish in time gets fast 503s with Retry-After (the load
        balancer or the client tries again elsewhere) instead of a latency collapse for every caller.
        """
        if self.draining:
            raise ServiceShuttingDown(retry_after=1.0)
        if self.in_flight >= self.settings.file.server.max_in_flight:
            raise Overloaded(retry_after=1.0)
        self.in_flight += 1

    def release(self) -> None:
        """Give back the place `admit` took."""
        self.in_flight -= 1

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
        limits = settings.file.limits
        fail_mode = FailMode(limits.fail_mode, metrics)
        idempotency: IdempotencyStore = MemoryIdempotencyStore()
        client = None
        if settings.env.redis_url is not None:
            # One client (one pool) for the process: the limiter, the idempotency store and readiness share it.
            timeout = float(limits.redis_timeout)
            client = connect_redis(settings.env.redis_url.reveal(), timeout, cluster=limits.redis_cluster)
            stack.push_async_callback(client.aclose)
            idempotency = RedisIdempotencyStore(client, timeout)
        limiter = build_limiter(limits, client, metrics, fail_mode)
        stack.push_async_callback(limiter.aclose)
        if settings.env.gemini_api_key is None:  # load_env requires it outside commands that never mint
            raise RuntimeError("no Gemini API key configured")
        minter = TokenMinter(
            api_key=settings.env.gemini_api_key,
            base_url=settings.env.gemini_base_url,
            ca_file=settings.env.gemini_ca_file,
            profiles=settings.profiles,
            upstream=settings.file.upstream,
            metrics=metrics,
        )
        stack.push_async_callback(minter.aclose)
        issuer = TokenIssuer(settings, limiter, idempotency, minter, metrics, fail_mode)
        # Before the lifespan lets the server accept: a new replica is ready with warm pools, not born cold.
        await limiter.warm()
        await minter.warm(settings.file.upstream.warm_connections)
    except BaseException:
        await stack.aclose()
        raise
    return Runtime(settings, metrics, verifier, limiter, minter, issuer, _stack=stack)
