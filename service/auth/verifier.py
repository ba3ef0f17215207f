"""Caller JWT verification: pinned algorithms per issuer, keys only from configuration, one generic 401.

The token's own headers never choose a key source: `jwk`, `jku`, `x5u` and `x5c` are ignored, `kid` is only
a lookup in the issuer's configured JWKS, and `crit` or nested tokens are refused outright. Whatever the input,
`verify` returns a caller or raises InvalidToken: nothing a client sends can make it raise anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import Algorithm, HMACAlgorithm, get_default_algorithms

from service.auth.claims import check_claims, check_header, identity
from service.auth.compact import Rejected, split_compact
from service.auth.identity import CallerIdentity
from service.auth.jwk_set import key_type_for
from service.auth.jwks import JWKSCache
from service.config import HS_ALGORITHMS, ConfigError, IssuerConfig, Secret
from service.errors import InvalidToken
from service.logging import get_logger
from service.metrics import Metrics

MAX_TOKEN_BYTES = 8192
# Refusals that time or a JWKS refresh can turn around (nbf/iat ahead of the clock, a kid not published yet, and a
# JWKS issuer's key or signature refusals: `Rejected.lasting`) are never remembered. Every other refusal is a fact
# about the token's bytes and this verifier's configuration.
MAY_CHANGE = frozenset({"not_yet_valid", "unknown_kid", "unexpected"})
REFUSED_MEMORY_SECONDS = 60.0


def _digest(authorization: str) -> bytes:
    return hashlib.blake2b(authorization.encode("utf-8", "surrogatepass"), digest_size=16).digest()


VERIFIED_CACHE_SIZE = 10_000
log = get_logger("livetoken.auth")


class _PreparedHMAC(HMACAlgorithm):
    """HMAC that vets each configured secret once, not per token.

    PyJWT's `prepare_key` sniffs the secret for PEM, SSH, DER and JWK shapes (two failed DER parses and a JSON
    parse: a third of an HS256 verification) on every call. Keys come only from configuration, so the result
    is kept per key; a secret that fails the vetting is never kept and fails every time.
    """

    def __init__(self, hash_alg: Any) -> None:
        super().__init__(hash_alg)
        self._prepared: dict[str | bytes, bytes] = {}
        self._keyed: dict[bytes, hmac.HMAC] = {}

    def prepare_key(self, key: str | bytes) -> bytes:
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = super().prepare_key(key)
            if len(self._prepared) < 64:
                self._prepared[key] = prepared
        return prepared

    def sign(self, msg: bytes, key: bytes) -> bytes:
        # The same MAC as PyJWT's hmac.new(key, msg, alg).digest() (a test pins it), from a copy of an HMAC
        # already keyed with this secret: half the cost of keying one per token.
        keyed = self._keyed.get(key)
        if keyed is None:
            keyed = hmac.new(key, digestmod=self.hash_alg)
            if len(self._keyed) < 64:
                self._keyed[key] = keyed
        mac = keyed.copy()
        mac.update(msg)
        return mac.digest()

    def verify(self, msg: bytes, key: bytes, sig: bytes) -> bool:
        return hmac.compare_digest(sig, self.sign(msg, key))


# PyJWT's signature algorithms, with HMAC keys vetted once per secret; "none" is not among them.
_ALGORITHMS: dict[str, Algorithm] = {
    **{name: alg for name, alg in get_default_algorithms().items() if name != "none"},
    "HS256": _PreparedHMAC(HMACAlgorithm.SHA256),
    "HS384": _PreparedHMAC(HMACAlgorithm.SHA384),
    "HS512": _PreparedHMAC(HMACAlgorithm.SHA512),
}


class _Issuer:
    """One configured issuer and its keys."""

    def __init__(self, cfg: IssuerConfig, secret: Secret | None, http: httpx.AsyncClient, metrics: Metrics) -> None:
        self.cfg = cfg
        self.algorithms = frozenset(cfg.algorithms)
        self.audiences = frozenset(cfg.audiences)
        self.static_key: Any = None
        self.jwks: JWKSCache | None = None
        # Settings were validated at load; these refusals only guard against wiring a verifier by hand.
        if cfg.hs256_secret_env is not None:
            if secret is None:
                raise ConfigError(f"issuer {cfg.issuer!r}: no secret was loaded from {cfg.hs256_secret_env}")
            self.static_key = secret.reveal().encode()
        elif cfg.public_key_file is not None:
            try:
                self.static_key = load_pem_public_key(Path(cfg.public_key_file).read_bytes())
            except (OSError, ValueError, UnsupportedAlgorithm):  # replaced since the settings were loaded
                raise ConfigError(
                    f"issuer {cfg.issuer!r}: public_key_file {cfg.public_key_file!r} is not a readable PEM public key"
                ) from None
        elif cfg.jwks_url is None and not cfg.discovery:
            raise ConfigError(f"issuer {cfg.issuer!r}: no key source")
        else:
            self.jwks = JWKSCache(
                cfg.jwks_url,
                http,
                self.algorithms,
                cache_ttl=float(cfg.jwks_cache_ttl),
                cooldown=float(cfg.jwks_refresh_cooldown),
                timeout=float(cfg.jwks_timeout),
                max_stale=float(cfg.jwks_max_stale),
                metrics=metrics,
                discovery_issuer=cfg.issuer if cfg.discovery else None,
            )

    async def key_for(self, header: Mapping[str, Any], alg: str) -> Any:
        if self.jwks is None:
            return self.static_key
        found = await self.jwks.get(header.get("kid"))  # a str of bounded length: check_header saw to it
        if found is None:
            raise Rejected("unknown_kid")
        if found.key_type != key_type_for(alg):
            raise Rejected("algorithm")  # an RS256 token naming the kid of an EC key, say
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
        # Digest of the Authorization value -> (until, reason) of a refusal the same bytes would get again: a flood
        # of one bad token costs a lookup, as a verified one does. Keyed by digest, so 10k huge bad headers hold
        # 10k small keys; the oldest goes first.
        self._refused: OrderedDict[bytes, tuple[float, str]] = OrderedDict()
        self._cache_size = cache_size

    async def start(self) -> None:
        """Warm the JWKS caches so the first callers do not wait for a fetch.

        Never raises for what the JWKS endpoint answers: a failed fetch is logged, counted and retried later,
        and jwks_status() says "unavailable" until one succeeds.
        """
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
        if not isinstance(authorization, str):
            authorization = None
        else:
            hit = self._verified.get(authorization)
            if hit is not None:
                if time.time() < hit[0]:
                    return hit[1]
                self._verified.pop(authorization, None)
            refused = self._refused.get(_digest(authorization))
            if refused is not None:
                if time.time() < refused[0]:
                    self._metrics.inc(self._metrics.jwt_rejections, refused[1])
                    raise InvalidToken(refused[1])
                self._refused.pop(_digest(authorization), None)
        try:
            caller, valid_until = await self._verify(authorization)
        except Rejected as exc:
            self._metrics.inc(self._metrics.jwt_rejections, exc.reason)
            if authorization is not None and exc.lasting and exc.reason not in MAY_CHANGE:
                if len(self._refused) >= self._cache_size:
                    self._refused.popitem(last=False)
                self._refused[_digest(authorization)] = (time.time() + REFUSED_MEMORY_SECONDS, exc.reason)
            raise InvalidToken(exc.reason) from None
        except Exception as exc:  # fail closed: a check that broke on odd input still refuses
            # A bug, not a caller's fault: logged by type only (the text may quote the token), counted apart.
            log.error("jwt_verification_error", error_type=type(exc).__name__)
            self._metrics.inc(self._metrics.jwt_rejections, "unexpected")
            raise InvalidToken("unexpected") from None
        if authorization is not None:  # always: _verify refuses a missing header
            if len(self._verified) >= self._cache_size:
                self._verified.popitem(last=False)  # the oldest entry goes first
            self._verified[authorization] = (valid_until, caller)
        return caller

    async def _verify(self, authorization: str | None) -> tuple[CallerIdentity, float]:
        if not authorization:
            raise Rejected("missing")
        scheme, _, credentials = authorization.partition(" ")
        # RFC 6750 §2.1: "Bearer" (any case), 1*SP, the token; stray spaces or tabs at the ends are tolerated.
        token = credentials.strip(" \t")
        if not (scheme.isascii() and scheme.lower() == "bearer") or not token:
            raise Rejected("scheme")
        if len(token) > MAX_TOKEN_BYTES:
            raise Rejected("oversized")
        header, payload, signing_input, signature = split_compact(token)
        alg = check_header(header)
        iss = payload.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise Rejected("unknown_issuer")
        if alg not in issuer.algorithms:
            raise Rejected("algorithm")
        try:
            key = await issuer.key_for(header, alg)
            self._check_signature(signing_input, signature, key, alg)
        except Rejected as exc:
            # A JWKS refresh can change the verdict (a key rotated under the same kid, or a token without a kid):
            # only a configured key's refusal lasts.
            exc.lasting = issuer.jwks is None
            raise
        valid_until = check_claims(payload, issuer.cfg, issuer.audiences)
        return identity(payload, issuer.cfg), valid_until

    @staticmethod
    def _check_signature(signing_input: bytes, signature: bytes, key: Any, alg: str) -> None:
        """PyJWT's algorithm verifies the signature over the segments exactly as received.

        The header and payload were parsed once already (with duplicate members refused); handing the token to
        jwt.decode would parse both again and re-check claims generically, a third of a verification.
        """
        if (alg in HS_ALGORITHMS) != isinstance(key, bytes):
            raise Rejected("algorithm")  # belt and braces against algorithm/key confusion
        algorithm = _ALGORITHMS.get(alg)
        if algorithm is None:
            raise Rejected("algorithm")
        try:
            valid = algorithm.verify(signing_input, algorithm.prepare_key(key), signature)
        except Exception:  # a key that does not fit the algorithm (a P-384 key for ES256, say)
            raise Rejected("invalid") from None
        if not valid:
            raise Rejected("bad_signature")
