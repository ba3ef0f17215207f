"""Keys, claims and signing for the JWT tests."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import Algorithm, ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms

from service.config import Duration, IssuerConfig

HS_SECRET = "hs-issuer-secret-0123456789-abcdefghijklmnop"
AUD = "livetoken"


@dataclass
class Keys:
    """Every key the tests sign with (including attackers' keys)."""

    rsa: RSAPrivateKey
    rsa_other: RSAPrivateKey
    ec: EllipticCurvePrivateKey
    ec_rotated: EllipticCurvePrivateKey
    ed: Ed25519PrivateKey
    rsa_public_pem: bytes


def public_jwk(public: Any, kty: str, kid: str, alg: str) -> dict[str, Any]:
    """The JWK of a public key, as an IdP publishes it."""
    algos: dict[str, type[Algorithm]] = {"RSA": RSAAlgorithm, "EC": ECAlgorithm, "OKP": OKPAlgorithm}
    algo = algos[kty]
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


_KIND = {"hs": ("HS256", "https://hs.test/"), "rs": ("RS256", "https://rs.test/")}
_KIND |= {"es": ("ES256", "https://es.test/"), "ed": ("EdDSA", "https://ed.test/")}


def b64(data: bytes | dict[str, Any] | list[Any]) -> str:
    """base64url without padding (JSON-encodes dicts and lists)."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def issuer_of(kind: str) -> str:
    """The issuer URL of one of the four test issuers."""
    return _KIND[kind][1]


def default_header(kind: str) -> dict[str, Any]:
    """The header PyJWT would write for `kind` (with the JWKS kid for es and ed)."""
    return {"alg": _KIND[kind][0], **({"kid": f"{kind}-1"} if kind in ("es", "ed") else {})}


def sign_segments(keys: Keys, kind: str, header_segment: str, payload_segment: str) -> str:
    """A token over two segments exactly as written, signed with `kind`'s real key (shapes PyJWT won't produce)."""
    alg = get_default_algorithms()[_KIND[kind][0]]
    key = {"hs": HS_SECRET.encode(), "rs": keys.rsa, "es": keys.ec, "ed": keys.ed}[kind]
    signing_input = f"{header_segment}.{payload_segment}"
    return f"{signing_input}.{b64(alg.sign(signing_input.encode(), alg.prepare_key(key)))}"


def raw_claims(kind: str, **literal: str) -> bytes:
    """Valid claims for `kind` as JSON text, with members replaced by literal JSON text (`exp="1e400"`)."""
    base = {k: v for k, v in claims(issuer_of(kind)).items() if k not in literal}
    members = [json.dumps(base)[1:-1], *(f"{json.dumps(name)}: {text}" for name, text in literal.items())]
    return ("{" + ", ".join(m for m in members if m) + "}").encode()


def sign_raw(
    keys: Keys, kind: str, header: bytes | dict[str, Any] | None = None, payload: bytes | dict[str, Any] | None = None
) -> str:
    """A correctly signed token of `kind` with any header and payload (JSON objects or raw bytes)."""
    head = default_header(kind) if header is None else header
    body = claims(issuer_of(kind)) if payload is None else payload
    return sign_segments(keys, kind, b64(head), b64(body))
