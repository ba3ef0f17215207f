"""Reading a JWKS document (RFC 7517): keep the keys this issuer can verify with, skip the rest and say why.

Real identity providers publish keys a verifier cannot use (encryption keys, other key types and curves,
certificate-only entries); one of them must never take the usable keys down with it. Nothing but `JWKSRejected`
leaves this module for any input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWK

from service.auth.claims import MAX_KID_CHARS

# A JWKS nests three levels ({"keys": [{...}]}, "key_ops"/"x5c" lists); past this it is not a JWKS.
MAX_JWKS_DEPTH = 8
MIN_RSA_BITS = 2048  # RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used"
_KTY_FOR_ALG = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_ALG_FOR_CURVE = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512", "secp256k1": "ES256K"}
# Members that only a private (or symmetric) key has: such a key was published by mistake and is not trusted.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

# The `reason` label values of livetoken_jwks_keys_skipped_total, bounded by construction.
SKIP_REASONS = (
    "not_an_object",  # an entry of "keys" that is not a JSON object
    "bad_kid",  # a kid that is not a string, or too long
    "duplicate_kid",  # a kid already taken by an earlier key in the same document (the first one is kept)
    "not_for_signing",  # use other than "sig", or key_ops without "verify"
    "key_type",  # a kty (or an EC curve) that none of the issuer's algorithms verify with
    "algorithm",  # an alg member that is not one of the issuer's algorithms
    "private_key",  # private or symmetric key material
    "weak_key",  # an RSA key shorter than 2048 bits
    "unusable",  # key material that does not load (missing or malformed members, unknown curve, x5c only, ...)
)


# Keys an IdP publishes for other uses: skipping them is expected. The other reasons mean a key is broken.
ROUTINE_SKIPS = frozenset({"not_for_signing", "key_type", "algorithm"})


class JWKSRejected(ValueError):
    """The document as a whole cannot be used; `reason` is a bounded label for logs."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class SkippedKey:
    """A key left out: its kid as published (for logs; never key material) and a reason from SKIP_REASONS."""

    kid: str | None
    reason: str


@dataclass(slots=True)
class JWKSContents:
    """The usable keys by kid (an absent kid is ""), and the keys skipped."""

    keys: dict[str, PyJWK] = field(default_factory=dict)
    skipped: list[SkippedKey] = field(default_factory=list)


def key_type_for(alg: str) -> str | None:
    """The JWK `kty` whose keys verify signatures of algorithm `alg` (RS256 -> RSA, ES256 -> EC, EdDSA -> OKP)."""
    return _KTY_FOR_ALG.get(alg[:2])


def _depth_within(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return False
            stack.extend((member, depth + 1) for member in (item.values() if isinstance(item, dict) else item))
    return True


def _skip_reason(jwk: dict[str, Any], algorithms: frozenset[str]) -> str | None:
    """Why this key cannot be used, judged on its members before any key material is parsed."""
    if jwk.get("use", "sig") != "sig":
        return "not_for_signing"
    if "key_ops" in jwk and (not isinstance(jwk["key_ops"], list) or "verify" not in jwk["key_ops"]):
        return "not_for_signing"
    kty = jwk.get("kty")
    if not isinstance(kty, str) or all(key_type_for(alg) != kty for alg in algorithms):
        return "key_type"
    if "alg" in jwk and (not isinstance(jwk["alg"], str) or jwk["alg"] not in algorithms):
        return "algorithm"
    if not _PRIVATE_MEMBERS.isdisjoint(jwk):
        return "private_key"
    return None


def _load(jwk: dict[str, Any], algorithms: frozenset[str]) -> PyJWK | str:
    """The loaded key, or why it could not be used."""
    try:
        key = PyJWK(jwk)
    except Exception:  # third-party parsing of untrusted input: any failure means "cannot use"
        return "unusable"  # (the exception's text quotes the whole JWK: it is never logged)
    if isinstance(key.key, EllipticCurvePublicKey):
        # The curve decides the algorithm: a P-384 key verifies ES384 only, whatever its alg member says.
        curve_alg = _ALG_FOR_CURVE.get(key.key.curve.name)
        if curve_alg not in algorithms or key.algorithm_name != curve_alg:
            return "key_type"
    if isinstance(key.key, RSAPublicKey) and key.key.key_size < MIN_RSA_BITS:
        return "weak_key"
    return key


def _kid_for_log(jwk: dict[str, Any]) -> str | None:
    kid = jwk.get("kid")
    return kid[:64] if isinstance(kid, str) else None


def parse_jwks(body: bytes, algorithms: frozenset[str]) -> JWKSContents:
    """The usable keys of a JWKS document for an issuer that allows `algorithms`, and the keys skipped."""
    try:
        doc: Any = json.loads(body)
    except (ValueError, RecursionError):  # not JSON (or not UTF-8), or nested past the recursion limit
        raise JWKSRejected("not_json") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JWKSRejected("not_a_jwks")
    if not _depth_within(doc, MAX_JWKS_DEPTH):
        raise JWKSRejected("too_deep")
    contents = JWKSContents()
    for jwk in doc["keys"]:
        if not isinstance(jwk, dict):
            contents.skipped.append(SkippedKey(None, "not_an_object"))
            continue
        kid = jwk.get("kid", "")
        reason = "bad_kid" if not isinstance(kid, str) or len(kid) > MAX_KID_CHARS else _skip_reason(jwk, algorithms)
        if reason is None and kid in contents.keys:
            reason = "duplicate_kid"
        loaded = _load(jwk, algorithms) if reason is None else reason
        if isinstance(loaded, str):
            contents.skipped.append(SkippedKey(_kid_for_log(jwk), loaded))
        else:
            contents.keys[kid] = loaded
    return contents
