"""Real keys, a real JWKS endpoint, and a verifier configured with HS256, RS256, ES256 and EdDSA issuers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from service.auth import JWTVerifier
from service.config import Secret
from service.metrics import Metrics
from tests.auth.signing import HS_SECRET, Keys, issuers, public_jwk
from tests.support.jwks_server import JWKSServer


@pytest.fixture(scope="session")
def keys() -> Keys:
    """Generated once per session (RSA generation is the slow part)."""
    r = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Keys(
        rsa=r,
        rsa_other=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec=ec.generate_private_key(ec.SECP256R1()),
        ec_rotated=ec.generate_private_key(ec.SECP256R1()),
        ed=ed25519.Ed25519PrivateKey.generate(),
        rsa_public_pem=r.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


@pytest.fixture
def jwks(keys: Keys) -> Iterator[JWKSServer]:
    """A JWKS endpoint publishing the ES256 and EdDSA issuers' keys."""
    server = JWKSServer()
    server.jwks = {
        "keys": [
            public_jwk(keys.ec.public_key(), "EC", "es-1", "ES256"),
            public_jwk(keys.ed.public_key(), "OKP", "ed-1", "EdDSA"),
        ]
    }
    yield server
    server.close()


@pytest.fixture
async def verifier(tmp_path: Path, keys: Keys, jwks: JWKSServer) -> AsyncIterator[JWTVerifier]:
    """A started verifier over a real HTTP client."""
    async with httpx.AsyncClient() as http:
        v = JWTVerifier(issuers(tmp_path, keys, jwks.url), {"https://hs.test/": Secret(HS_SECRET)}, http, Metrics())
        await v.start()
        yield v


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The algorithm of every signature any verifier checks from now on, in order (each is still checked)."""
    checked: list[str] = []
    real = JWTVerifier._check_signature

    def counting(signing_input: bytes, signature: bytes, key: object, alg: str) -> None:
        checked.append(alg)
        real(signing_input, signature, key, alg)

    monkeypatch.setattr(JWTVerifier, "_check_signature", staticmethod(counting))
    return checked
