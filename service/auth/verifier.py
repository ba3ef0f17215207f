"""Caller JWT verification: pinned algorithms per issuer, keys only from configuration, one generic 401.

The token's own headers never choose a key source: `jwk`, `jku`, `x5u` and `x5c` are ignored, `kid` is only
a lookup in the issuer's configured JWKS, and `crit` or nested tokens are refused outright.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import Algorithm, HMACAlgorithm, get_default_algorithms

from service.auth.identity import CallerIdentity
from service.auth.jwks import JWKSCache
from service.config import HS_ALGORITHMS, IssuerConfig, Secret
from service.errors import InvalidToken
from service.metrics import Metrics

MAX_TOKEN_BYTES = 8192
# A JWT that verified is remembered for at most this long (and never past its exp or max age): a caller
# retrying, or flooding, with the same token costs a dict lookup instead of a parse and a signature check.
# It is also how long a JWKS key removed by its issuer keeps admitting tokens it signed before.
VERIFIED_CACHE_SECONDS = 60.0
VERIFIED_CACHE_SIZE = 10_000
MAX_CLAIM_CHARS = 256
_ACCEPTED_TYP = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})


class _PreparedHMAC(HMACAlgorithm):
    """HMAC that vets each configured secret once, not per token.

    PyJWT's `prepare_key` sniffs the secret for PEM, SSH, DER and JWK shapes (two failed DER parses and a JSON
    parse: a third of an HS256 verification) on every call. Keys come only from configuration, so the result
    is kept per key; a secret that fails the vetting is never kept and fails every time.
    """

    def __init__(self, hash_alg: Any) -> None:
        super().__init__(hash_alg)
        self._prepared: dict[str | bytes, bytes] = {}

    def prepare_key(self, key: str | bytes) -> bytes:
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = super().prepare_key(key)
            if len(self._prepared) < 64:
                self._prepared[key] = prepared
        return prepared


# PyJWT's signature algorithms, with HMAC keys vetted once per secret; "none" is not among them.
_ALGORITHMS: dict[str, Algorithm] = {
    **{name: alg for name, alg in get_default_algorithms().items() if name != "none"},
    "HS256": _PreparedHMAC(HMACAlgorithm.SHA256),
    "HS384": _PreparedHMAC(HMACAlgorithm.SHA384),
    "HS512": _PreparedHMAC(HMACAlgorithm.SHA512),
}


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Reject(Exception):
    """Internal: a verification step failed; `reason` is a bounded label for metrics and debug logs."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Reject("duplicate_member")
        out[key] = value
    return out


def _segment(data: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        value = json.loads(raw, object_pairs_hook=_no_duplicates)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _Reject("malformed") from None
    if not isinstance(value, dict):
        raise _Reject("malformed")
    return value


class _Issuer:
    """One configured issuer and its keys."""

    def __init__(self, cfg: IssuerConfig, secret: Secret | None, http: httpx.AsyncClient, metrics: Metrics) -> None:
        self.cfg = cfg
        self.algorithms = frozenset(cfg.algorithms)
        self.audiences = frozenset(cfg.audiences)
        self.static_key: Any = None
        self.jwks: JWKSCache | None = None
        if cfg.hs256_secret_env is not None:
            assert secret is not None
            self.static_key = secret.reveal().encode()
        elif cfg.public_key_file is not None:
            self.static_key = load_pem_public_key(Path(cfg.public_key_file).read_bytes())
        else:
            assert cfg.jwks_url is not None
            self.jwks = JWKSCache(
                cfg.jwks_url,
                http,
                self.algorithms,
                cache_ttl=float(cfg.jwks_cache_ttl),
                cooldown=float(cfg.jwks_refresh_cooldown),
                timeout=float(cfg.jwks_timeout),
                max_stale=float(cfg.jwks_max_stale),
                metrics=metrics,
            )

    async def key_for(self, header: Mapping[str, Any]) -> Any:
        if self.jwks is None:
            return self.static_key
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
            raise _Reject("bad_kid")
        found = await self.jwks.get(kid)
        if found is None:
            raise _Reject("unknown_kid")
        return found.key


class JWTVerifier:
    """Verifies `Authorization: Bearer <jwt>` against the configured issuers."""

    def __init__(
        self,
        issuers: list[IssuerConfig],
        secrets: Mapping[str, Secret],
        http: httpx.AsyncClient,
        metrics: Metrics,
        cache_size: int = VERIFIED_CACHE_SIZE,
    ) -> None:
        self._issuers = {cfg.issuer: _Issuer(cfg, secrets.get(cfg.issuer), http, metrics) for cfg in issuers}
        self._metrics = metrics
        # Authorization value -> (valid until, caller). An OrderedDict drops its oldest entry in O(1); a dict's
        # first entry sits behind the holes its earlier evictions left, so finding it got slower as they grew.
        self._verified: OrderedDict[str, tuple[float, CallerIdentity]] = OrderedDict()
        self._cache_size = cache_size

    async def start(self) -> None:
        """Warm the JWKS caches so the first callers do not wait for a fetch (failures are retried later)."""
        for issuer in self._issuers.values():
            if issuer.jwks is not None:
                await issuer.jwks.refresh()

    def jwks_status(self) -> Literal["ok", "stale", "unavailable"]:
        """Worst JWKS state across issuers (ok when no issuer uses JWKS)."""
        states = [i.jwks.status() for i in self._issuers.values() if i.jwks is not None]
        if "unavailable" in states:
            return "unavailable"
        return "stale" if "stale" in states else "ok"

    async def verify(self, authorization: str | None) -> CallerIdentity:
        """The verified caller, or InvalidToken (always the same public message)."""
        if authorization is not None:
            hit = self._verified.get(authorization)
            if hit is not None:
                if time.time() < hit[0]:
                    return hit[1]
                self._verified.pop(authorization, None)
        try:
            caller, valid_until = await self._verify(authorization)
        except _Reject as exc:
            self._metrics.inc(self._metrics.jwt_rejections, exc.reason)
            raise InvalidToken(exc.reason) from None
        if authorization is not None:  # always: _verify refuses a missing header
            if len(self._verified) >= self._cache_size:
                self._verified.popitem(last=False)  # the oldest entry goes first
            self._verified[authorization] = (valid_until, caller)
        return caller

    async def _verify(self, authorization: str | None) -> tuple[CallerIdentity, float]:
        if not authorization:
            raise _Reject("missing")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token or " " in token.strip():
            raise _Reject("scheme")
        token = token.strip()
        if len(token) > MAX_TOKEN_BYTES:
            raise _Reject("oversized")
        parts = token.split(".")
        if len(parts) != 3 or not all(parts):
            raise _Reject("malformed")
        header = _segment(parts[0])
        payload = _segment(parts[1])
        self._check_header(header)
        iss = payload.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise _Reject("unknown_issuer")
        alg = header.get("alg")
        if alg not in issuer.algorithms:
            raise _Reject("algorithm")
        key = await issuer.key_for(header)
        self._check_signature(parts, key, alg)
        valid_until = self._check_claims(payload, issuer)
        return self._identity(payload, issuer.cfg), valid_until

    @staticmethod
    def _check_header(header: Mapping[str, Any]) -> None:
        if "crit" in header or header.get("b64", True) is not True:
            raise _Reject("crit")  # no extensions: RFC 7797's unencoded payloads among them
        if "kid" in header and not isinstance(header["kid"], str):
            raise _Reject("bad_kid")
        cty = header.get("cty")
        if isinstance(cty, str) and cty.lower() in ("jwt", "application/jwt"):
            raise _Reject("nested")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP):
            raise _Reject("typ")

    @staticmethod
    def _check_signature(parts: list[str], key: Any, alg: str) -> None:
        """PyJWT's algorithm verifies the signature over the segments exactly as received.

        The header and payload were parsed once already (with duplicate members refused); handing the token to
        jwt.decode would parse both again and re-check claims generically, a third of a verification.
        """
        if (alg in HS_ALGORITHMS) != isinstance(key, bytes):
            raise _Reject("algorithm")  # belt and braces against algorithm/key confusion
        algorithm = _ALGORITHMS.get(alg)
        if algorithm is None:
            raise _Reject("algorithm")
        try:
            signature = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
        except (binascii.Error, ValueError):
            raise _Reject("malformed") from None
        try:
            prepared = algorithm.prepare_key(key)
            valid = algorithm.verify(f"{parts[0]}.{parts[1]}".encode(), prepared, signature)
        except (jwt.PyJWTError, ValueError, TypeError):
            raise _Reject("invalid") from None
        if not valid:
            raise _Reject("bad_signature")

    @staticmethod
    def _check_claims(claims: Mapping[str, Any], issuer: _Issuer) -> float:
        """The registered claims (RFC 7519 §4.1) as PyJWT checks them, stricter on types, plus max token age.

        Returns until when the time-bound checks keep holding (at most VERIFIED_CACHE_SECONDS from now): how long
        the verified token may be answered from memory.
        """
        cfg = issuer.cfg
        now = time.time()
        leeway = float(cfg.leeway)
        required = ("exp", "iss", "aud", "iat") if cfg.max_token_age is not None else ("exp", "iss", "aud")
        if any(claims.get(name) is None for name in required):
            raise _Reject("missing_claim")
        for name in ("exp", "nbf", "iat"):
            if name in claims and not _is_time(claims[name]):
                raise _Reject("invalid")
        if claims["exp"] <= now - leeway:
            raise _Reject("expired")
        if claims.get("nbf", now) > now + leeway or claims.get("iat", now) > now + leeway:
            raise _Reject("not_yet_valid")
        if claims["iss"] != cfg.issuer:
            raise _Reject("audience_or_issuer")
        audience = claims["aud"]
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise _Reject("invalid")
        if not issuer.audiences.intersection(audiences):
            raise _Reject("audience_or_issuer")
        for name in ("sub", "jti"):
            if name in claims and not isinstance(claims[name], str):
                raise _Reject("invalid")
        valid_until = min(now + VERIFIED_CACHE_SECONDS, claims["exp"] + leeway)
        if cfg.max_token_age is not None:
            too_old_at = claims["iat"] + float(cfg.max_token_age) + leeway
            if now > too_old_at:
                raise _Reject("too_old")
            valid_until = min(valid_until, too_old_at)
        return float(valid_until)

    @staticmethod
    def _identity(claims: Mapping[str, Any], cfg: IssuerConfig) -> CallerIdentity:
        subject = claims.get(cfg.subject_claim)
        if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_CLAIM_CHARS:
            raise _Reject("subject")
        tenant: str | None = None
        if cfg.tenant_claim is not None:
            raw_tenant = claims.get(cfg.tenant_claim)
            if raw_tenant is not None:
                if not isinstance(raw_tenant, str | int) or isinstance(raw_tenant, bool):
                    raise _Reject("tenant")
                tenant = str(raw_tenant)[:MAX_CLAIM_CHARS]
        raw_scopes = claims.get(cfg.scopes_claim)
        if isinstance(raw_scopes, str):
            scopes = frozenset(raw_scopes.split())
        elif isinstance(raw_scopes, list) and all(isinstance(s, str) for s in raw_scopes):
            scopes = frozenset(raw_scopes)
        else:
            scopes = frozenset()
        return CallerIdentity(cfg.issuer, subject, tenant, scopes, claims)
