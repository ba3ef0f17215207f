"""Reading a JWKS document: keys this issuer cannot use are skipped, each with a reason; the rest are kept."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from service.auth.jwk_set import SKIP_REASONS, JWKSRejected, parse_jwks
from tests.auth.signing import Keys, b64, public_jwk

ES = frozenset({"ES256"})


def _doc(*keys: Any) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def _ec(keys: Keys, **over: Any) -> dict[str, Any]:
    """The good P-256 key, with members overridden (None deletes one)."""
    jwk = {**public_jwk(keys.ec.public_key(), "EC", "es-1", "ES256"), **over}
    return {k: v for k, v in jwk.items() if v is not None}


def _bad_keys(keys: Keys) -> dict[str, tuple[Any, str]]:
    """Entry of "keys" -> the reason it is skipped by an ES256-only issuer."""
    p384 = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True)
    raw = x25519.X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x25519_key = {"kty": "OKP", "crv": "X25519", "x": b64(raw), "use": "enc"}
    private = ECAlgorithm.to_jwk(keys.ec_rotated, as_dict=True)
    return {
        "rsa-without-n-and-e": ({"kty": "RSA", "kid": "x"}, "key_type"),
        "ec-unknown-curve": (_ec(keys, kid="c", crv="P-999", alg=None), "unusable"),
        "ec-curve-not-a-string": (_ec(keys, kid="c", crv=["P-256"], alg=None), "unusable"),
        "ec-without-y": (_ec(keys, kid="y", y=None), "unusable"),
        "ec-coordinate-not-base64": (_ec(keys, kid="b", x="!!!"), "unusable"),
        "ec-coordinate-a-number": (_ec(keys, kid="n", x=12345), "unusable"),
        "x5c-only": ({"kty": "EC", "kid": "cert", "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOC"]}, "unusable"),
        "p384-for-es256-issuer": ({**p384, "kid": "p384"}, "key_type"),
        "p384-claiming-es256": ({**p384, "kid": "liar", "alg": "ES256"}, "key_type"),
        "encryption-key": (_ec(keys, kid="enc", use="enc", alg="ECDH-ES"), "not_for_signing"),
        "use-not-a-string": (_ec(keys, kid="u", use=["sig"]), "not_for_signing"),
        "key-ops-encrypt": (_ec(keys, kid="ops", key_ops=["encrypt"]), "not_for_signing"),
        "key-ops-not-a-list": (_ec(keys, kid="ops2", key_ops="verify"), "not_for_signing"),
        "okp-x25519-encryption": ({**x25519_key, "kid": "x25519"}, "not_for_signing"),
        "okp-x25519": ({**x25519_key, "kid": "x25519", "use": "sig"}, "key_type"),
        "oct-secret": ({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}, "key_type"),
        "kty-unknown": ({"kty": "LWE", "kid": "pq"}, "key_type"),
        "kty-list": ({"kty": ["EC"], "kid": "l"}, "key_type"),
        "kty-missing": ({"kid": "none"}, "key_type"),
        "alg-list": (_ec(keys, kid="al", alg=["ES256"]), "algorithm"),
        "alg-not-allowed": (_ec(keys, kid="es512", alg="ES512"), "algorithm"),
        "alg-unknown": (_ec(keys, kid="es999", alg="ES999"), "algorithm"),
        "kid-object": (_ec(keys, kid={"$ne": 1}), "bad_kid"),
        "kid-too-long": (_ec(keys, kid="k" * 300), "bad_kid"),
        "duplicate-kid": (_ec(keys, x=public_jwk(keys.ec_rotated.public_key(), "EC", "", "")["x"]), "duplicate_kid"),
        "private-key": ({**private, "kid": "leaked"}, "private_key"),
        "a-string": ("junk", "not_an_object"),
        "a-number": (5, "not_an_object"),
        "null": (None, "not_an_object"),
        "a-list": ([{"kty": "EC"}], "not_an_object"),
    }


def test_every_bad_key_is_skipped_with_its_reason_and_the_good_key_kept(keys: Keys) -> None:
    """One good key among every kind of unusable entry: the good one is kept, each other one skipped once."""
    bad = _bad_keys(keys)
    contents = parse_jwks(_doc(_ec(keys), *(entry for entry, _ in bad.values())), ES)
    assert list(contents.keys) == ["es-1"]
    assert [s.reason for s in contents.skipped] == [reason for _, reason in bad.values()]
    assert {s.reason for s in contents.skipped} <= set(SKIP_REASONS)


def test_skipped_keys_carry_their_kid_for_the_log_but_never_key_material(keys: Keys) -> None:
    """A skipped key is reported by kid (strings only, cut to 64 characters) and reason; nothing else of it."""
    private = {**ECAlgorithm.to_jwk(keys.ec_rotated, as_dict=True), "kid": "leaked-" + "x" * 100}
    contents = parse_jwks(_doc(_ec(keys), private, _ec(keys, kid=["list"], alg="ES512")), ES)
    assert [(s.kid, s.reason) for s in contents.skipped] == [("leaked-" + "x" * 57, "private_key"), (None, "bad_kid")]
    assert private["d"] not in repr(contents.skipped)


def test_rsa_keys_that_cannot_be_loaded_or_are_weak_are_skipped(keys: Keys) -> None:
    """For an RS256 issuer: an RSA entry without `n`/`e` is unusable; RFC 7518 §3.3 requires 2048-bit keys, so a
    1024-bit key is skipped as weak; the good 2048-bit key is kept."""
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505 - the point
    good = public_jwk(keys.rsa.public_key(), "RSA", "rs-1", "RS256")
    doc = _doc(good, {"kty": "RSA", "kid": "x"}, public_jwk(weak, "RSA", "weak", "RS256"))
    contents = parse_jwks(doc, frozenset({"RS256", "PS256"}))
    assert list(contents.keys) == ["rs-1"]
    assert [(s.kid, s.reason) for s in contents.skipped] == [("x", "unusable"), ("weak", "weak_key")]


def test_keys_without_alg_serve_every_algorithm_of_their_type(keys: Keys) -> None:
    """An RSA key with no `alg` is kept for a PS256-only issuer; an Ed25519 key for EdDSA."""
    rsa_jwk = {k: v for k, v in RSAAlgorithm.to_jwk(keys.rsa.public_key(), as_dict=True).items() if k != "alg"}
    assert list(parse_jwks(_doc({**rsa_jwk, "kid": "r"}), frozenset({"PS256"})).keys) == ["r"]
    ed = public_jwk(keys.ed.public_key(), "OKP", "ed", "EdDSA")
    assert list(parse_jwks(_doc(ed), frozenset({"EdDSA"})).keys) == ["ed"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"<html>not json</html>", "not_json", id="html"),
        pytest.param(b"\xff\xfe\x00", "not_json", id="not-utf8"),
        pytest.param(b'{"keys": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}", "not_json", id="nested-100k"),
        pytest.param(b'{"keys": [{"kty": "EC", "x": ' + b"[" * 20 + b"]" * 20 + b"}]}", "too_deep", id="nested-20"),
        pytest.param(b"[]", "not_a_jwks", id="a-list"),
        pytest.param(b'{"keys": {"kty": "EC"}}', "not_a_jwks", id="keys-an-object"),
        pytest.param(b'{"keys": null}', "not_a_jwks", id="keys-null"),
        pytest.param(b'{"kty": "EC"}', "not_a_jwks", id="a-single-jwk"),
        pytest.param(b"1e400", "not_a_jwks", id="a-number"),
    ],
)
def test_a_document_that_is_not_a_jwks_is_rejected_whole(body: bytes, reason: str) -> None:
    """Not JSON, nested past any JWKS, or not {"keys": [...]}: the one JWKSRejected, with a bounded reason."""
    with pytest.raises(JWKSRejected) as err:
        parse_jwks(body, ES)
    assert err.value.reason == reason


def test_a_set_with_no_usable_key_parses_to_no_keys(keys: Keys) -> None:
    """Only unusable keys: nothing kept, everything reported (the cache then counts a failed refresh)."""
    contents = parse_jwks(_doc({"kty": "RSA", "kid": "x"}, _ec(keys, crv="P-999", alg=None)), ES)
    assert contents.keys == {}
    assert [s.reason for s in contents.skipped] == ["key_type", "unusable"]
