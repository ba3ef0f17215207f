"""Firebase App Check tokens (`X-Firebase-AppCheck`): the proof that a request comes from your real app.

Verified as Firebase's Admin SDKs do: RS256 only, header `typ` JWT and a `kid` from App Check's JWKS, `iss`
`https://firebaseappcheck.googleapis.com/<project number>`, `aud` a list naming `projects/<project number>`, not
expired, `sub` (the app id) a non-empty string — and, when configured, one of `app_ids`. A verified token is
remembered until it expires (at most a minute), as caller JWTs are: a page sends the same App Check token with
many requests. Whatever the input, `verify` returns the app id or raises AppCheckInvalid.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

import httpx
from jwt.algorithms import RSAAlgorithm

from service.auth.claims import VERIFIED_CACHE_SECONDS, check_header
from service.auth.compact import Rejected, split_compact
from service.auth.jwks import JWKSCache
from service.config import AppCheckConfig
from service.errors import AppCheckInvalid
from service.metrics import Metrics

ISSUER_PREFIX = "https://firebaseappcheck.googleapis.com/"
MAX_TOKEN_BYTES = 4096
CACHE_SIZE = 10_000
_RS256 = RSAAlgorithm(RSAAlgorithm.SHA256)


class AppCheckVerifier:
    """App Check tokens of one Firebase project."""

    def __init__(self, cfg: AppCheckConfig, http: httpx.AsyncClient, metrics: Metrics) -> None:
        self.cfg = cfg
        self.issuer = ISSUER_PREFIX + cfg.project_number
        self.audience = "projects/" + cfg.project_number
        self.app_ids = frozenset(cfg.app_ids)
        self._metrics = metrics
        self.jwks = JWKSCache(
            cfg.jwks_url,
            http,
            frozenset({"RS256"}),
            cache_ttl=float(cfg.jwks_cache_ttl),
            cooldown=float(cfg.jwks_refresh_cooldown),
            timeout=float(cfg.jwks_timeout),
            max_stale=float(cfg.jwks_max_stale),
            metrics=metrics,
        )
        self._verified: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def start(self) -> None:
        """Load the keys before the first caller needs them (a failure is logged and retried later)."""
        await self.jwks.refresh()

    async def verify(self, token: str | None) -> str:
        """The app id of a valid App Check token, or AppCheckInvalid (the same answer for every failure)."""
        if token is not None:
            hit = self._verified.get(token)
            if hit is not None and time.time() < hit[0]:
                return hit[1]
        try:
            app_id, valid_until = await self._verify(token)
        except Rejected as exc:
            self._metrics.inc(self._metrics.app_check_rejections, exc.reason)
            raise AppCheckInvalid(exc.reason) from None
        except Exception:  # fail closed on odd input, as the JWT verifier does
            self._metrics.inc(self._metrics.app_check_rejections, "unexpected")
            raise AppCheckInvalid("unexpected") from None
        if token is not None:
            if len(self._verified) >= CACHE_SIZE:
                self._verified.popitem(last=False)
            self._verified[token] = (valid_until, app_id)
        return app_id

    async def _verify(self, token: str | None) -> tuple[str, float]:
        if not token:
            raise Rejected("missing")
        token = token.strip(" \t")
        if len(token) > MAX_TOKEN_BYTES:
            raise Rejected("oversized")
        header, claims, signing_input, signature = split_compact(token)
        alg = check_header(header)
        if alg != "RS256":
            raise Rejected("algorithm")
        if header.get("typ") != "JWT" or not isinstance(header.get("kid"), str):
            raise Rejected("typ")
        key = await self.jwks.get(header["kid"])
        if key is None:
            raise Rejected("unknown_kid")
        if key.key_type != "RSA" or not _RS256.verify(signing_input, key.key, signature):
            raise Rejected("bad_signature")
        now = time.time()
        leeway = float(self.cfg.leeway)
        exp, iat = _seconds(claims.get("exp")), claims.get("iat")
        if exp is None or exp <= now - leeway:
            raise Rejected("expired")
        if iat is not None and ((issued := _seconds(iat)) is None or issued > now + leeway):
            raise Rejected("not_yet_valid")
        if claims.get("iss") != self.issuer:
            raise Rejected("issuer")
        audience = claims.get("aud")
        if not isinstance(audience, list) or self.audience not in audience:
            raise Rejected("audience")
        app_id = claims.get("sub")
        if not isinstance(app_id, str) or not app_id or len(app_id) > 256 or not app_id.isprintable():
            raise Rejected("subject")
        if self.app_ids and app_id not in self.app_ids:
            raise Rejected("app_not_allowed")
        return app_id, min(now + VERIFIED_CACHE_SECONDS, exp + leeway)

    async def aclose(self) -> None:
        """Cancel background key refreshes."""
        await self.jwks.aclose()


def _seconds(value: object) -> float | None:
    """A NumericDate: a finite JSON number (not a boolean) within any date a token could carry; else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and abs(value) >= 10**12:
        return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) and abs(seconds) < 1e12 else None
