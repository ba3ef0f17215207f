"""Everything a running app owns (connections, caches, the minter), opened and closed by the lifespan."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Literal

import httpx
import msgspec

from service.auth import JWTVerifier
from service.auth.app_check import AppCheckVerifier
from service.auth.egress import EgressTransport
from service.catalogue import LiveModel, catalogue, today
from service.config import ConfigError, Settings, model_warnings
from service.errors import Overloaded, ServiceShuttingDown
from service.fd_budget import current_upstream_share
from service.issuing.admission import Admission
from service.issuing.blocking import Blocking
from service.issuing.flow import TokenIssuer
from service.issuing.idempotency import IdempotencyStore, MemoryIdempotencyStore, RedisIdempotencyStore
from service.logging import get_logger
from service.metrics import Metrics
from service.ratelimit import (
    FailMode,
    FailoverRateLimiter,
    MemoryRateLimiter,
    RateLimiter,
    build_limiter,
    connect_redis,
)
from service.ratelimit.blocks import BlockStore, MemoryBlockStore, RedisBlockStore
from service.tracing import NO_TRACING, Tracing
from service.upstream import KeyFileWatcher, TokenMinter

log = get_logger("livetoken")


class Readiness(msgspec.Struct, frozen=True):
    """Readiness: whether this instance should receive traffic, and why."""

    status: Literal["ready", "not_ready"]
    config: Literal["loaded"]
    rate_limiter: Literal["ok", "fallback", "unavailable"]
    rate_limiter_backend: Literal["redis", "memory"]
    upstream_circuit: Literal["closed", "open", "half_open"]
    jwks: Literal["ok", "stale", "unavailable"]


@dataclass(frozen=True)
class Generation:
    """The objects one configuration makes. A request takes the generation current when it starts and keeps it
    to its end, so a reload (issuing/reload.py) never mixes two configurations in one answer."""

    settings: Settings
    verifier: JWTVerifier
    issuer: TokenIssuer
    blocking: Blocking
    app_check: AppCheckVerifier | None = None  # with an [app_check] section


@dataclass
class Runtime:
    """The app's live objects. Built by `open_runtime`, reached by handlers as `app.state.runtime`."""

    current: Generation
    metrics: Metrics
    limiter: RateLimiter
    minter: TokenMinter
    admission: Admission
    draining: bool = False
    tracing: Tracing = NO_TRACING
    key_file: KeyFileWatcher | None = None
    _http: httpx.AsyncClient | None = field(default=None, repr=False)
    _idempotency: IdempotencyStore | None = field(default=None, repr=False)
    _fail_mode: FailMode | None = field(default=None, repr=False)
    _block_store: BlockStore | None = field(default=None, repr=False)
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack, repr=False)

    @property
    def settings(self) -> Settings:
        """The current configuration."""
        return self.current.settings

    @property
    def verifier(self) -> JWTVerifier:
        """The current configuration's JWT verifier."""
        return self.current.verifier

    @property
    def issuer(self) -> TokenIssuer:
        """The current configuration's token flow."""
        return self.current.issuer

    @property
    def blocking(self) -> Blocking:
        """Blocks, for the current configuration's issuers."""
        return self.current.blocking

    async def reconfigure(self, settings: Settings) -> None:
        """Build the objects of `settings` on this runtime's connections, then make them current at once.

        Unchanged issuers keep their verifier (its JWKS caches and remembered tokens); new ones must load their
        keys, or the reload is refused (ConfigError) rather than turning every caller away.
        """
        if self._http is None or self._idempotency is None or self._fail_mode is None or self._block_store is None:
            raise RuntimeError("this runtime was not opened by open_runtime")
        old = self.current
        verifier = None
        same_issuers = settings.file.issuers == old.settings.file.issuers
        if same_issuers and dict(settings.env.issuer_secrets) == dict(old.settings.env.issuer_secrets):
            verifier = old.verifier
        current = await _generation(
            settings,
            self.metrics,
            self._http,
            self.limiter,
            self._idempotency,
            self.minter.reconfigured(settings.profiles, settings.file.upstream),
            self._fail_mode,
            self._block_store,
            self.tracing,
            verifier,
            old.app_check,
        )
        if current.verifier.jwks_status() == "unavailable" and old.verifier.jwks_status() != "unavailable":
            raise ConfigError("issuers: the new issuers' keys (JWKS) could not be loaded; nothing was changed")
        if _keys_status(current) == "unavailable" and _keys_status(old) != "unavailable":
            raise ConfigError("app_check: Firebase App Check's keys could not be loaded; nothing was changed")
        self.current = current
        watch_models(settings, self.metrics)
        server = settings.file.server
        self.admission.configure(admission_slots(settings), float(server.queue_timeout), server.max_queue)

    async def admit(self) -> float:
        """Take one of this process's token-request places, waiting for one in the queue when all are taken
        (admission.py); refuse when draining, or when the request cannot start within `server.queue_timeout`.
        Returns when the place was taken, for `release`."""
        if self.draining:
            raise ServiceShuttingDown(retry_after=1.0)
        admission = self.admission
        if not admission.try_enter():
            started = time.monotonic()
            try:
                await admission.wait()
            except Overloaded:  # refused on arrival (waited 0) or after waiting
                self.metrics.child(self.metrics.admission_wait, "shed").observe(time.monotonic() - started)
                raise
            self.metrics.child(self.metrics.admission_wait, "admitted").observe(time.monotonic() - started)
        return time.monotonic()

    def release(self, admitted_at: float) -> None:
        """Give back the place `admit` took (to the next in the queue, if any)."""
        self.admission.leave(time.monotonic() - admitted_at)

    async def readiness(self) -> Readiness:
        """Config is loaded by construction; report the limiter, circuit and JWKS state."""
        limiter_state = await _limiter_state(self.limiter)
        jwks = _worst(self.verifier.jwks_status(), _keys_status(self.current))
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


def _keys_status(generation: Generation) -> Literal["ok", "stale", "unavailable"]:
    """The state of Firebase App Check's keys, where a profile needs them ("ok" otherwise)."""
    if generation.app_check is None:
        return "ok"
    return generation.app_check.jwks.status()


def _worst(*states: Literal["ok", "stale", "unavailable"]) -> Literal["ok", "stale", "unavailable"]:
    return "unavailable" if "unavailable" in states else "stale" if "stale" in states else "ok"


async def _limiter_state(limiter: RateLimiter) -> Literal["ok", "fallback", "unavailable"]:
    if isinstance(limiter, FailoverRateLimiter):
        return await limiter.state()
    return "ok" if await limiter.ping() else "unavailable"


async def open_runtime(settings: Settings, metrics: Metrics, tracing: Tracing = NO_TRACING) -> Runtime:
    """Open connections and build the service objects, traced by `tracing`; on failure, close whatever was opened."""
    stack = AsyncExitStack()
    try:
        # JWKS (and discovery) fetches: through the egress proxy when the environment names one, as the mint.
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                timeout=httpx.Timeout(5.0),
                follow_redirects=False,
                trust_env=False,
                transport=EgressTransport(settings.env.egress),
            )
        )
        if settings.env.egress.http or settings.env.egress.https:
            log.info("egress_proxy", route=settings.env.egress.description)
        tracing.instrument_httpx(http)  # JWKS fetches
        limits = settings.file.limits
        fail_mode = FailMode(limits.fail_mode, metrics)
        idempotency: IdempotencyStore = MemoryIdempotencyStore()
        client = None
        if settings.env.redis_url is not None:
            # One client (one pool) for the process: the limiter, the idempotency store and readiness share it.
            timeout = float(limits.redis_timeout)
            client = connect_redis(settings.env.redis_url.reveal(), timeout, cluster=limits.redis_cluster)
            stack.push_async_callback(client.aclose)
            tracing.instrument_redis(client)  # the idempotency store's and refunds' commands (not the lean path's)
            idempotency = RedisIdempotencyStore(client, timeout, metrics)
        limiter = build_limiter(limits, client, metrics, fail_mode, tracing=tracing)
        stack.push_async_callback(limiter.aclose)
        store: BlockStore
        if client is not None:
            store = RedisBlockStore(client, limits.key_prefix, float(limits.redis_timeout), metrics)
        elif isinstance(limiter, MemoryRateLimiter):
            store = MemoryBlockStore(limiter)
        else:  # pragma: no cover - build_limiter gives memory exactly when there is no Redis
            raise RuntimeError("no block store for this limiter")
        if settings.env.gemini_api_key is None:  # load_env requires it outside commands that never mint
            raise RuntimeError("no Gemini API key configured")
        minter = TokenMinter(
            api_key=settings.env.gemini_api_key,
            base_url=settings.env.gemini_base_url,
            ca_file=settings.env.gemini_ca_file,
            profiles=settings.profiles,
            upstream=settings.file.upstream,
            metrics=metrics,
            fallback_keys=settings.env.gemini_api_fallback_keys,
            tracing=tracing,
            egress=settings.env.egress,
        )
        stack.push_async_callback(minter.aclose)
        key_file = None
        if settings.env.gemini_api_key_file is not None:  # key rotation without a restart: polled, and on SIGHUP
            key_file = KeyFileWatcher(settings.env.gemini_api_key_file, minter.keys, metrics)
            # With a config file, the config reloader owns SIGHUP and re-reads the key file with it.
            key_file.start(sighup=settings.config_path is None)
            stack.push_async_callback(key_file.aclose)
        current = await _generation(settings, metrics, http, limiter, idempotency, minter, fail_mode, store, tracing)
        watch_models(settings, metrics)
        # Before the lifespan lets the server accept: a new replica is ready with warm pools, not born cold.
        await limiter.warm()
        await minter.warm(warm_connections(settings))
    except BaseException:
        await stack.aclose()
        raise
    return Runtime(
        current,
        metrics,
        limiter,
        minter,
        open_admission(settings, metrics),
        tracing=tracing,
        key_file=key_file,
        _http=http,
        _idempotency=idempotency,
        _fail_mode=fail_mode,
        _block_store=store,
        _stack=stack,
    )


async def _generation(  # noqa: PLR0917 - the parts a configuration is built on, in one place
    settings: Settings,
    metrics: Metrics,
    http: httpx.AsyncClient,
    limiter: RateLimiter,
    idempotency: IdempotencyStore,
    minter: TokenMinter,
    fail_mode: FailMode,
    store: BlockStore,
    tracing: Tracing,
    verifier: JWTVerifier | None = None,
    previous: AppCheckVerifier | None = None,
) -> Generation:
    if verifier is None:
        verifier = JWTVerifier(settings.file.issuers, settings.env.issuer_secrets, http, metrics)
        await verifier.start()
    issuer = TokenIssuer(settings, limiter, idempotency, minter, metrics, fail_mode, tracing=tracing)
    app_check = None
    if settings.file.app_check is not None:
        if previous is not None and previous.cfg == settings.file.app_check:
            app_check = previous  # its cached keys and remembered tokens stay
        else:
            app_check = AppCheckVerifier(settings.file.app_check, http, metrics)
            await app_check.start()
    blocking = Blocking(store, [i.issuer for i in settings.file.issuers])
    return Generation(settings, verifier, issuer, blocking, app_check)


def watch_models(settings: Settings, metrics: Metrics) -> None:
    """Log what the catalogue warns about the profiles' models (unknown, or shutting down soon), and export
    `livetoken_profile_model_retiring` per profile, evaluated at each scrape so a shutdown date that comes into
    the window shows without a restart."""
    for warning in model_warnings(settings.file):
        log.warning("profile_model_warning", warning=warning)
    gauge = metrics.profile_model_retiring
    gauge.clear()
    for name, profile in settings.profiles.items():
        entry = catalogue().get(profile.model)
        model = profile.model.removeprefix("models/")
        if entry is None:
            gauge.labels(profile=name, model=model).set(0)
        else:
            gauge.labels(profile=name, model=model).set_function(_retiring(entry))


def _retiring(entry: LiveModel) -> Callable[[], float]:
    return lambda: 1.0 if entry.retiring_on(today()) else 0.0


def admission_slots(settings: Settings) -> int:
    """`server.max_in_flight`, within the sockets to Google the open-files limit leaves (fd_budget.py): a place is
    a request that may hold an upstream connection."""
    wanted = settings.file.server.max_in_flight
    share = current_upstream_share(wanted)
    return wanted if share is None else max(1, min(wanted, share))


def open_admission(settings: Settings, metrics: Metrics) -> Admission:
    """The process's admission, its gauges read at scrape time."""
    server = settings.file.server
    shed = {why: metrics.child(metrics.admission_shed, why) for why in ("queue_full", "wait_too_long", "timed_out")}

    def on_shed(why: str) -> None:
        shed[why].inc()

    admission = Admission(admission_slots(settings), float(server.queue_timeout), server.max_queue, on_shed)
    metrics.admission_queue_depth.set_function(lambda: admission.waiting)
    metrics.admission_busy.set_function(lambda: admission.busy)
    metrics.admission_slots.set_function(lambda: admission.slots)
    return admission


def warm_connections(settings: Settings) -> int:
    """`upstream.warm_connections`, within what the open-files limit leaves for sockets to Google (fd_budget.py):
    warming must not take the descriptors the server counts on for callers' connections."""
    wanted = settings.file.upstream.warm_connections
    share = current_upstream_share(settings.file.server.max_in_flight)
    if share is None or wanted <= share:
        return wanted
    log.warning("warm_connections_lowered", configured=wanted, effective=share, hint="raise the open-files limit")
    return share
