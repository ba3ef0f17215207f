"""The verifier's HMAC keeps PyJWT's key vetting while doing it once per configured secret."""

from __future__ import annotations

import base64

import jwt
import pytest
from jwt.algorithms import HMACAlgorithm

from service.auth.verifier import _ALGORITHMS, _PreparedHMAC

SECRET = b"a-configured-secret-0123456789-abcdef"


def test_secret_shaped_like_a_public_key_is_refused_every_time() -> None:
    """An asymmetric key used as an HS secret is refused on each call: a failed vetting is never remembered."""
    alg = _PreparedHMAC(HMACAlgorithm.SHA256)
    pem = b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"
    for _ in range(2):
        with pytest.raises(jwt.InvalidKeyError):
            alg.prepare_key(pem)


def test_repeated_verification_with_one_secret_checks_every_signature() -> None:
    """The same secret verifies good signatures and refuses a forged one after it has been prepared."""
    alg = _ALGORITHMS["HS256"]
    good = jwt.encode({"sub": "a"}, SECRET, algorithm="HS256")
    forged = jwt.encode({"sub": "a"}, b"another-secret-0123456789-abcdefghij", algorithm="HS256")
    for token, expected in ((good, True), (forged, False)) * 3:
        head, payload, sig = token.split(".")
        signature = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        assert alg.verify(f"{head}.{payload}".encode(), alg.prepare_key(SECRET), signature) is expected
    assert "none" not in _ALGORITHMS
    # The module-level PyJWT is not touched by ours.
    assert type(jwt.api_jws._jws_global_obj._algorithms["HS256"]) is HMACAlgorithm
