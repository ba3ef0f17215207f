"""Keys, claims and signing for the JWT tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from service.config import Duration, IssuerConfig

HS_SECRET = "hs-issuer-secret-0123456789-abcdefghijklmnop"
AUD = "livetoken"


@dataclass
class Keys:
    """Every key the tests sign with (including attackers' keys)."""

    rsa: rsa.RSAPrivateKey
    rsa_other: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    ec_rotated: ec.EllipticCurvePrivateKey
    ed: ed25519.Ed25519PrivateKey
    rsa_public_pem: bytes


def public_jwk(public: Any, kty: str, kid: str, alg: str) -> dict[str, Any]:
    """The JWK of a public key, as an IdP publishes it."""
    algo = {"RSA": RSAAlgorithm, "EC": ECAlgorithm, "OKP": OKPAlgorithm}[kty]
    return {**algo.to_jwk(public, as_dict=True), "kid": kid, "alg": alg, "use": "sig"}


def issuers(tmp_path: Path, keys: Keys, jwks_url: str, cooldown: float = 30.0, **extra: Any) -> list[IssuerConfig]:
    """The four issuers under test."""
    pem = tmp_path / "rs.pem"
    pem.write_bytes(keys.rsa_public_pem)
    common: dict[str, Any] = {"audiences": [AUD], "leeway": Duration(30), "max_token_age": Duration(3600)}
    jwks_opts: dict[str, Any] = {
        "jwks_url": jwks_url,
        "jwks_refresh_cooldown": Duration(cooldown),
        "jwks_timeout": Duration(0.5),
        **extra,
    }
    return [
        IssuerConfig(issuer="https://hs.test/", algorithms=["HS256"], hs256_secret_env="HS", **common),
        IssuerConfig(issuer="https://rs.test/", algorithms=["RS256"], public_key_file=str(pem), **common),
        IssuerConfig(issuer="https://es.test/", algorithms=["ES256"], **jwks_opts, **common),
        IssuerConfig(issuer="https://ed.test/", algorithms=["EdDSA"], **jwks_opts, tenant_claim="org", **common),
    ]


def claims(iss: str, **over: Any) -> dict[str, Any]:
    """Valid claims for `iss`, with overrides (None deletes a claim)."""
    now = int(time.time())
    base: dict[str, Any] = {"iss": iss, "aud": AUD, "sub": "alice", "iat": now, "exp": now + 300, "scope": "a b"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(keys: Keys, kind: str, headers: dict[str, Any] | None = None, **over: Any) -> str:
    """A token from one of the four issuers."""
    if kind == "hs":
        return jwt.encode(claims("https://hs.test/", **over), HS_SECRET, algorithm="HS256", headers=headers)
    if kind == "rs":
        return jwt.encode(claims("https://rs.test/", **over), keys.rsa, algorithm="RS256", headers=headers)
    if kind == "es":
        h = {"kid": "es-1", **(headers or {})}
        return jwt.encode(claims("https://es.test/", **over), keys.ec, algorithm="ES256", headers=h)
    h = {"kid": "ed-1", **(headers or {})}
    return jwt.encode(claims("https://ed.test/", **over), keys.ed, algorithm="EdDSA", headers=h)
