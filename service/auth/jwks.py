"""A JWKS cache per issuer: async fetches, single-flight, refresh cooldown, serving stale keys through outages."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, Literal

import httpx
import structlog
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from service.metrics import Metrics

MAX_JWKS_BYTES = 256 * 1024
log = structlog.get_logger("livetoken.jwks")

_KTY_FOR_ALG = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


def _kty_allowed(kty: str, algorithms: frozenset[str]) -> bool:
    return any(_KTY_FOR_ALG.get(alg[:2]) == kty for alg in algorithms)


class JWKSCache:
    """Keys of one issuer's JWKS endpoint, by `kid`."""

    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        algorithms: frozenset[str],
        *,
        cache_ttl: float,
        cooldown: float,
        timeout: float,
        max_stale: float,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
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
        self._inflight: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    def status(self) -> Literal["ok", "stale", "unavailable"]:
        """ok: fresh keys; stale: serving cached keys past their TTL; unavailable: no usable keys."""
        if self._fetched_at is None or not self._keys:
            return "unavailable"
        age = self._clock() - self._fetched_at
        if age > self._max_stale:
            return "unavailable"
        return "ok" if age <= self._ttl else "stale"

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
        try:
            async with asyncio.timeout(self._timeout):
                async with self._http.stream("GET", self.url, headers={"Accept": "application/json"}) as resp:
                    if resp.status_code != 200:
                        raise ValueError(f"status {resp.status_code}")
                    body = bytearray()
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_JWKS_BYTES:
                            raise ValueError("JWKS document too large")
            keys = self._parse(bytes(body))
        except (httpx.HTTPError, OSError, TimeoutError, ValueError) as exc:
            self._metrics.jwks_refreshes.labels(outcome="error").inc()
            log.warning("jwks_refresh_failed", url=self.url, error_type=type(exc).__name__, cached_keys=len(self._keys))
            return
        self._keys = keys
        self._fetched_at = self._clock()
        self._metrics.jwks_refreshes.labels(outcome="ok").inc()
        log.info("jwks_refreshed", url=self.url, keys=len(keys))

    def _parse(self, body: bytes) -> dict[str, PyJWK]:
        doc: Any = json.loads(body)
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise ValueError("not a JWKS document")
        keys: dict[str, PyJWK] = {}
        for jwk in doc["keys"]:
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                continue
            if not _kty_allowed(str(jwk.get("kty")), self._algorithms):
                continue
            if "alg" in jwk and jwk["alg"] not in self._algorithms:
                continue
            try:
                keys[str(jwk.get("kid", ""))] = PyJWK(jwk)
            except (PyJWKError, ValueError, TypeError, KeyError):
                continue
        if not keys:
            raise ValueError("JWKS has no usable key")
        return keys

    async def aclose(self) -> None:
        """Cancel background refreshes."""
        for task in list(self._background):
            task.cancel()
