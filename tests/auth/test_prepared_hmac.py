"""The verifier's HMAC keeps PyJWT's key vetting while doing it once per configured secret."""

from __future__ import annotations

import jwt
import pytest
from jwt.algorithms import HMACAlgorithm

from service.auth.verifier import _JWT, _PreparedHMAC

SECRET = b"a-configured-secret-0123456789-abcdef"


def test_secret_shaped_like_a_public_key_is_refused_every_time() -> None:
    """An asymmetric key used as an HS secret is refused on each call: a failed vetting is never remembered."""
    alg = _PreparedHMAC(HMACAlgorithm.SHA256)
    pem = b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"
    for _ in range(2):
        with pytest.raises(jwt.InvalidKeyError):
            alg.prepare_key(pem)


def test_repeated_verification_with_one_secret_checks_every_signature() -> None:
    """The same secret verifies good tokens and refuses a forged one after it has been prepared."""
    good = jwt.encode({"sub": "a"}, SECRET, algorithm="HS256")
    forged = jwt.encode({"sub": "a"}, b"another-secret-0123456789-abcdefghij", algorithm="HS256")
    for _ in range(3):
        assert _JWT.decode(good, SECRET, algorithms=["HS256"])["sub"] == "a"
        with pytest.raises(jwt.InvalidSignatureError):
            _JWT.decode(forged, SECRET, algorithms=["HS256"])
    # The module-level PyJWT is not touched by ours.
    assert type(jwt.api_jws._jws_global_obj._algorithms["HS256"]) is HMACAlgorithm
