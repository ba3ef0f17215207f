"""A JWKS cache per issuer: async fetches, single-flight, refresh cooldown, serving stale keys through outages.

A refresh that fails, for any reason, keeps the keys of the last good one; keys a refresh cannot use are skipped,
counted and logged, and the others kept (jwk_set.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Literal

import httpx
from jwt import PyJWK

from service.auth.discovery import parse_discovery
from service.auth.jwk_set import ROUTINE_SKIPS, JWKSContents, JWKSRejected, parse_jwks
from service.logging import get_logger
from service.metrics import Metrics

MAX_JWKS_BYTES = 256 * 1024
MAX_SKIPPED_LOGGED = 20
log = get_logger("livetoken.jwks")


class JWKSCache:
    """Keys of one issuer's JWKS endpoint, by `kid`."""

    def __init__(
        self,
        url: str | None,
        http: httpx.AsyncClient,
        algorithms: frozenset[str],
        *,
        cache_ttl: float,
        cooldown: float,
        timeout: float,
        max_stale: float,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        discovery_issuer: str | None = None,
    ) -> None:
        # With discovery, `url` is the jwks_uri the issuer's discovery document named last (None before the first
        # good one); each refresh reads the document again first.
        self.url = url
        self._issuer = discovery_issuer
        self._http = http
        self._algorithms = algorithms
        self._ttl = cache_ttl
        self._cooldown = cooldown
        self._timeout = timeout
        self._max_stale = max_stale
        self._metrics = metrics
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._last_failed = False
        self._inflight: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    def status(self) -> Literal["ok", "stale", "unavailable"]:
        """ok: fresh keys; stale: serving cached keys past their TTL or after a failed refresh; unavailable: none."""
        if self._fetched_at is None or not self._keys:
            return "unavailable"
        age = self._clock() - self._fetched_at
        if age > self._max_stale:
            return "unavailable"
        return "stale" if age > self._ttl or self._last_failed else "ok"

    def _may_fetch(self) -> bool:
        return self._last_attempt is None or self._clock() - self._last_attempt >= self._cooldown

    async def refresh(self) -> None:
        """Fetch now unless a fetch is already under way (concurrent callers share it)."""
        if self._inflight is None or self._inflight.done():
            self._last_attempt = self._clock()
            self._inflight = asyncio.create_task(self._fetch())
        await asyncio.shield(self._inflight)

    async def get(self, kid: str | None) -> PyJWK | None:
        """The key for `kid`; an unknown kid refetches at most once per cooldown."""
        lookup = kid or ""
        key = self._usable(lookup)
        if key is None:
            if self._may_fetch():
                await self.refresh()
                key = self._usable(lookup)
            else:
                self._metrics.jwks_refreshes.labels(outcome="cooldown").inc()
        elif self._fetched_at is not None and self._clock() - self._fetched_at > self._ttl and self._may_fetch():
            # Past its TTL: keep serving the cached key and refresh in the background.
            task = asyncio.create_task(self.refresh())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return key

    def _usable(self, kid: str) -> PyJWK | None:
        if self._fetched_at is None or self._clock() - self._fetched_at > self._max_stale:
            return None
        if kid == "" and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        if self._issuer is not None:
            failure = await self._discover(self._issuer)
            if self.url is None:  # nothing discovered yet: the refresh failed
                self._refresh_failed(failure or "no_jwks_uri")
                return
        url = self.url
        if url is None:  # pragma: no cover - a cache without discovery is built with its url
            return
        try:
            contents = parse_jwks(await self._download(url), self._algorithms)
        except Exception as exc:  # the IdP is outside: any failure is a failed refresh, never a 500
            self._refresh_failed(exc.reason if isinstance(exc, JWKSRejected) else type(exc).__name__)
            return
        self._report_skipped(contents)
        if not contents.keys:
            self._refresh_failed("no_usable_key")
            return
        self._keys = contents.keys
        self._fetched_at = self._clock()
        self._last_failed = False
        self._metrics.jwks_refreshes.labels(outcome="ok").inc()
        log.info("jwks_refreshed", url=self.url, keys=len(contents.keys), skipped=len(contents.skipped))

    async def _discover(self, issuer: str) -> str | None:
        """Read the issuer's discovery document and take its jwks_uri. On a failure keep the last one (stale
        serving, as for the keys): logged, counted as a failed refresh when there was one to keep, and returned."""
        where = issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            document = parse_discovery(await self._download(where), issuer, self._algorithms)
        except Exception as exc:  # the IdP is outside: any failure is a failed refresh, never a 500
            reason = exc.reason if isinstance(exc, JWKSRejected) else type(exc).__name__
            log.warning("oidc_discovery_failed", issuer=issuer, reason=reason, jwks_uri=self.url)
            if self.url is not None:
                self._last_failed = True
                self._metrics.jwks_refreshes.labels(outcome="error").inc()
            return reason
        if document.jwks_uri != self.url:
            log.info("oidc_discovered", issuer=issuer, jwks_uri=document.jwks_uri)
        if document.disjoint_algorithms:
            log.warning(
                "oidc_algorithms_disjoint",
                issuer=issuer,
                configured=sorted(self._algorithms),
                advertised=document.advertised,
            )
        self.url = document.jwks_uri
        return None

    async def _download(self, url: str) -> bytes:
        async with asyncio.timeout(self._timeout):
            async with self._http.stream("GET", url, headers={"Accept": "application/json"}) as resp:
                if resp.status_code != 200:
                    raise JWKSRejected(f"http_{resp.status_code // 100}xx")
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise JWKSRejected("too_large")
        return bytes(body)

    def _refresh_failed(self, reason: str) -> None:
        self._last_failed = True
        self._metrics.jwks_refreshes.labels(outcome="error").inc()
        log.warning(
            "jwks_refresh_failed", url=self.url, reason=reason, cached_keys=len(self._keys), status=self.status()
        )

    def _report_skipped(self, contents: JWKSContents) -> None:
        """Count every skipped key; one log line per refresh names them (kid and reason, never key material)."""
        if not contents.skipped:
            return
        for skipped in contents.skipped:
            self._metrics.inc(self._metrics.jwks_keys_skipped, skipped.reason)
        # Keys meant for something else (encryption, another algorithm) are routine; a key that is broken is not.
        routine = all(k.reason in ROUTINE_SKIPS for k in contents.skipped)
        (log.info if routine else log.warning)(
            "jwks_keys_skipped",
            url=self.url,
            count=len(contents.skipped),
            keys=[{"kid": k.kid, "reason": k.reason} for k in contents.skipped[:MAX_SKIPPED_LOGGED]],
            usable=len(contents.keys),
        )

    async def aclose(self) -> None:
        """Cancel background refreshes."""
        for task in list(self._background):
            task.cancel()
