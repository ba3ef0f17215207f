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


@pytest.mark.parametrize("name", ["HS256", "HS384", "HS512"])
def test_one_shot_mac_equals_pyjwts_and_refuses_a_flipped_bit(name: str) -> None:
    """Ours signs from a copy of an HMAC keyed once per secret: the same bytes as PyJWT's own algorithm, for every
    size; a signature differing in one bit, or cut short, is refused."""
    ours, theirs = _ALGORITHMS[name], jwt.get_algorithm_by_name(name)
    msg = b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0"
    mac = theirs.sign(msg, theirs.prepare_key(SECRET))
    assert ours.sign(msg, ours.prepare_key(SECRET)) == mac
    assert ours.verify(msg, ours.prepare_key(SECRET), mac) is True
    flipped = bytes([mac[0] ^ 1]) + mac[1:]
    assert ours.verify(msg, ours.prepare_key(SECRET), flipped) is False
    assert ours.verify(msg, ours.prepare_key(SECRET), mac[:-1]) is False
