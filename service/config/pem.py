"""PEM files the configuration names, loaded once at start-up so a wrong file fails there, not on first use."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

# The key types PyJWT verifies: RS*/PS*, ES*, EdDSA.
_JWT_KEY_TYPES = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)


def check_public_key_file(path: str) -> None:
    """ValueError unless `path` holds exactly a PEM public key of a type JWT issuers sign with."""
    data = _read(path)
    if b"PRIVATE KEY-----" in data:
        raise ValueError(f"{path!r} holds a private key; give the issuer's public key")
    try:
        key = load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        if b"-----BEGIN CERTIFICATE-----" in data:
            raise ValueError(
                f"{path!r} holds a certificate, not a public key (extract the key with openssl x509 -pubkey -noout)"
            ) from None
        raise ValueError(f"{path!r} is not a PEM public key") from None
    if not isinstance(key, _JWT_KEY_TYPES):
        kind = type(key).__name__.removesuffix("PublicKey")
        raise ValueError(f"{path!r} holds a {kind} key; JWT issuers sign with RSA, EC or Ed25519 keys")


def check_ca_file(path: str) -> None:
    """ValueError unless `path` is a CA bundle that TLS can load (at least one PEM certificate)."""
    _read(path)
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError:
        raise ValueError(f"{path!r} holds no PEM certificate") from None


def _read(path: str) -> bytes:
    if not Path(path).is_file():
        raise ValueError(f"no such file {path!r}")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path!r}: {exc.strerror}") from None
