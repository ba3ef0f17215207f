"""Good tokens from every issuer kind are accepted; a corpus of hostile and malformed ones is refused.

Every refusal is the same InvalidToken with the same public message: a caller never learns which check failed.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from service.auth import JWTVerifier
from service.errors import InvalidToken
from tests.auth.signing import HS_SECRET, Keys, claims, public_jwk, sign
from tests.support.jwks_server import JWKSServer


def b64(data: bytes | dict[str, Any] | list[Any]) -> str:
    """base64url without padding (JSON-encodes dicts and lists)."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs_sign(header: dict[str, Any], payload: bytes, key: bytes = HS_SECRET.encode()) -> str:
    """An HS256 signature over arbitrary bytes (for payloads PyJWT refuses to produce)."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    return signing_input + "." + b64(hmac.new(key, signing_input.encode(), "sha256").digest())


def forge(header: dict[str, Any], payload: dict[str, Any] | list[Any], signature: bytes = b"sig") -> str:
    """A token with arbitrary header and payload and a made-up signature."""
    return f"{b64(header)}.{b64(payload)}.{b64(signature)}"


@pytest.mark.parametrize("kind", ["hs", "rs", "es", "ed"])
async def test_good_tokens_are_accepted(verifier: JWTVerifier, keys: Keys, kind: str) -> None:
    """HS256, RS256 (static PEM), ES256 and EdDSA (JWKS) tokens verify and yield the caller."""
    caller = await verifier.verify(f"Bearer {sign(keys, kind, org='acme', scope='live:voice extra')}")
    assert caller.subject == "alice"
    assert caller.scopes == {"live:voice", "extra"}
    if kind == "ed":
        assert caller.tenant == "acme"


async def test_scopes_may_be_a_list_and_scheme_is_case_insensitive(verifier: JWTVerifier, keys: Keys) -> None:
    """`scope` as a JSON list works too, and `bearer` in any case."""
    caller = await verifier.verify(f"bearer {sign(keys, 'hs', scope=['x', 'y'])}")
    assert caller.scopes == {"x", "y"}


@pytest.mark.parametrize(
    "claims_over",
    [
        pytest.param({"aud": ["someone-else", "livetoken"]}, id="aud-list-naming-us"),
        pytest.param({"nbf": int(time.time()) - 5}, id="nbf-passed"),
        pytest.param({"nbf": int(time.time()) + 10}, id="nbf-within-leeway"),
        pytest.param({"exp": time.time() + 300.5, "iat": time.time() - 0.5}, id="fractional-times"),
        pytest.param({"jti": "abc-123", "extra": {"nested": [1, 2]}}, id="jti-and-private-claims"),
    ],
)
async def test_valid_variations_are_accepted(verifier: JWTVerifier, keys: Keys, claims_over: dict[str, Any]) -> None:
    """What RFC 7519 allows stays allowed: an audience list, nbf, fractional NumericDates, private claims."""
    caller = await verifier.verify(f"Bearer {sign(keys, 'hs', **claims_over)}")
    assert caller.subject == "alice"


async def test_expired_within_leeway_is_accepted(verifier: JWTVerifier, keys: Keys) -> None:
    """Clock skew up to the leeway (30 s here) is tolerated."""
    caller = await verifier.verify(f"Bearer {sign(keys, 'hs', exp=int(time.time()) - 10)}")
    assert caller.subject == "alice"


def _hostile(keys: Keys) -> dict[str, Callable[[], str]]:
    now = int(time.time())
    hs = claims("https://hs.test/")
    rs_pem = keys.rsa_public_pem
    good_rs = sign(keys, "rs")
    h, p, s = good_rs.split(".")
    attacker = ec.generate_private_key(ec.SECP256R1())
    return {
        "alg-none": lambda: forge({"alg": "none", "typ": "JWT"}, hs, b""),
        "alg-None": lambda: forge({"alg": "None"}, hs, b""),
        "alg-NONE-empty-sig": lambda: f"{b64({'alg': 'NONE'})}.{b64(hs)}.",
        "hs256-signed-with-rsa-public-pem": lambda: hs_sign(
            {"alg": "HS256", "typ": "JWT"}, json.dumps(claims("https://rs.test/")).encode(), rs_pem
        ),
        "hs256-token-to-rs256-issuer": lambda: jwt.encode(claims("https://rs.test/"), HS_SECRET, algorithm="HS256"),
        "rs512-not-allowed": lambda: jwt.encode(claims("https://rs.test/"), keys.rsa, algorithm="RS512"),
        "ps256-not-allowed": lambda: jwt.encode(claims("https://rs.test/"), keys.rsa, algorithm="PS256"),
        "expired-beyond-leeway": lambda: sign(keys, "hs", exp=now - 120),
        "future-nbf": lambda: sign(keys, "hs", nbf=now + 600),
        "iat-in-future": lambda: sign(keys, "hs", iat=now + 600),
        "too-old-iat": lambda: sign(keys, "hs", iat=now - 7200, exp=now + 60),
        "wrong-issuer": lambda: jwt.encode(claims("https://evil.test/"), HS_SECRET, algorithm="HS256"),
        "iss-not-a-string": lambda: hs_sign({"alg": "HS256"}, json.dumps({**hs, "iss": ["https://hs.test/"]}).encode()),
        "wrong-audience": lambda: sign(keys, "hs", aud="someone-else"),
        "missing-audience": lambda: sign(keys, "hs", aud=None),
        "missing-sub": lambda: sign(keys, "hs", sub=None),
        "empty-sub": lambda: sign(keys, "hs", sub=""),
        "non-string-sub": lambda: sign(keys, "hs", sub=12345),
        "oversized-sub": lambda: sign(keys, "hs", sub="a" * 1000),
        "missing-exp": lambda: sign(keys, "hs", exp=None),
        "missing-iat-with-max-age": lambda: sign(keys, "hs", iat=None),
        "exp-not-a-number": lambda: sign(keys, "hs", exp="tomorrow"),
        "unknown-kid": lambda: sign(keys, "es", headers={"kid": "nope"}),
        "kid-path-traversal": lambda: sign(keys, "es", headers={"kid": "../../../../etc/passwd"}),
        "kid-sql-injection": lambda: sign(keys, "es", headers={"kid": "' OR '1'='1"}),
        "kid-not-a-string": lambda: forge({"alg": "ES256", "kid": {"$ne": 1}}, claims("https://es.test/")),
        "tampered-payload": lambda: f"{h}.{b64({**claims('https://rs.test/'), 'sub': 'admin'})}.{s}",
        "tampered-header": lambda: f"{b64({'alg': 'RS256', 'typ': 'JWT', 'x': 1})}.{p}.{s}",
        "stripped-signature": lambda: f"{h}.{p}.",
        "signature-from-other-rsa-key": lambda: jwt.encode(
            claims("https://rs.test/"), keys.rsa_other, algorithm="RS256"
        ),
        "es256-key-not-in-jwks": lambda: jwt.encode(
            claims("https://es.test/"), attacker, algorithm="ES256", headers={"kid": "es-1"}
        ),
        "embedded-jwk-attacker-key": lambda: jwt.encode(
            claims("https://es.test/"),
            attacker,
            algorithm="ES256",
            headers={"kid": "attacker", "jwk": public_jwk(attacker.public_key(), "EC", "attacker", "ES256")},
        ),
        "jku-elsewhere": lambda: jwt.encode(
            claims("https://es.test/"),
            attacker,
            algorithm="ES256",
            headers={"kid": "attacker", "jku": "http://127.0.0.1:9/evil-jwks.json"},
        ),
        "x5u-elsewhere": lambda: jwt.encode(
            claims("https://es.test/"),
            attacker,
            algorithm="ES256",
            headers={"kid": "x", "x5u": "http://127.0.0.1:9/c.pem"},
        ),
        "unknown-crit": lambda: sign(keys, "hs", headers={"crit": ["exp-ext"], "exp-ext": 1}),
        "nested-jwt": lambda: jwt.encode(
            {"iss": "https://hs.test/", "aud": "livetoken", "sub": "x", "exp": now + 60, "iat": now},
            HS_SECRET,
            algorithm="HS256",
            headers={"cty": "JWT"},
        ),
        "duplicate-claims": lambda: hs_sign({"alg": "HS256"}, json.dumps(hs)[:-1].encode() + b', "sub": "admin"}'),
        "weird-typ": lambda: sign(keys, "hs", headers={"typ": "secevent+jwt"}),
        "garbage-base64": lambda: "!!!.@@@.###",
        "non-json-segments": lambda: f"{b64(b'hello')}.{b64(b'world')}.{b64(b'sig')}",
        "payload-is-array": lambda: forge({"alg": "HS256"}, [1, 2]),
        "two-segments": lambda: "abc.def",
        "four-segments": lambda: sign(keys, "hs") + ".extra",
        "empty-segments": lambda: "..",
        "oversized": lambda: sign(keys, "hs", pad="x" * 10_000),
        "jwe-shaped": lambda: "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d",
        "token-for-other-issuer-claiming-ours": lambda: jwt.encode(
            claims("https://ed.test/"), keys.rsa, algorithm="RS256"
        ),
        "exp-numeric-string": lambda: sign(keys, "hs", exp=str(now + 600)),
        "exp-boolean": lambda: sign(keys, "hs", exp=True),
        "nbf-not-a-number": lambda: sign(keys, "hs", nbf="now"),
        "iat-not-a-number": lambda: sign(keys, "hs", iat="today"),
        "aud-list-with-a-number": lambda: sign(keys, "hs", aud=["livetoken", 5]),
        "aud-empty-list": lambda: sign(keys, "hs", aud=[]),
        "aud-object": lambda: sign(keys, "hs", aud={"livetoken": True}),
        "jti-not-a-string": lambda: sign(keys, "hs", jti=7),
        "hs-kid-not-a-string": lambda: hs_sign({"alg": "HS256", "kid": 5}, json.dumps(hs).encode()),
        "b64-false-unencoded-payload": lambda: sign(keys, "hs", headers={"b64": False}),
        "signature-cut-short": lambda: sign(keys, "hs")[:-6],
        "signature-not-base64": lambda: sign(keys, "hs").rsplit(".", 1)[0] + ".***",
    }


HOSTILE_IDS = [
    "alg-none",
    "alg-None",
    "alg-NONE-empty-sig",
    "hs256-signed-with-rsa-public-pem",
    "hs256-token-to-rs256-issuer",
    "rs512-not-allowed",
    "ps256-not-allowed",
    "expired-beyond-leeway",
    "future-nbf",
    "iat-in-future",
    "too-old-iat",
    "wrong-issuer",
    "iss-not-a-string",
    "wrong-audience",
    "missing-audience",
    "missing-sub",
    "empty-sub",
    "non-string-sub",
    "oversized-sub",
    "missing-exp",
    "missing-iat-with-max-age",
    "exp-not-a-number",
    "unknown-kid",
    "kid-path-traversal",
    "kid-sql-injection",
    "kid-not-a-string",
    "tampered-payload",
    "tampered-header",
    "stripped-signature",
    "signature-from-other-rsa-key",
    "es256-key-not-in-jwks",
    "embedded-jwk-attacker-key",
    "jku-elsewhere",
    "x5u-elsewhere",
    "unknown-crit",
    "nested-jwt",
    "duplicate-claims",
    "weird-typ",
    "garbage-base64",
    "non-json-segments",
    "payload-is-array",
    "two-segments",
    "four-segments",
    "empty-segments",
    "oversized",
    "jwe-shaped",
    "token-for-other-issuer-claiming-ours",
    "exp-numeric-string",
    "exp-boolean",
    "nbf-not-a-number",
    "iat-not-a-number",
    "aud-list-with-a-number",
    "aud-empty-list",
    "aud-object",
    "jti-not-a-string",
    "hs-kid-not-a-string",
    "b64-false-unencoded-payload",
    "signature-cut-short",
    "signature-not-base64",
]


@pytest.mark.parametrize("case", HOSTILE_IDS)
async def test_hostile_token_is_refused_generically(
    verifier: JWTVerifier, keys: Keys, jwks: JWKSServer, case: str
) -> None:
    """Each hostile token is refused with the one generic InvalidToken; header key sources are never fetched."""
    token = _hostile(keys)[case]()
    with pytest.raises(InvalidToken) as err:
        await verifier.verify(f"Bearer {token}")
    assert err.value.detail == "The bearer token is missing or invalid."
    assert str(err.value) == "The bearer token is missing or invalid."
    assert token not in str(err.value)
    assert all(p == "/jwks.json" for p in jwks.paths), jwks.paths


def test_corpus_covers_every_case(keys: Keys) -> None:
    """The parametrized ids and the corpus stay in step (and there are at least 40 cases)."""
    assert sorted(HOSTILE_IDS) == sorted(_hostile(keys))
    assert len(HOSTILE_IDS) >= 40


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic YWxpY2U6c2VjcmV0",
        "Token abc.def.ghi",
        "Bearer a.b.c d.e.f",
        "Bearer\ta.b.c",
    ],
)
async def test_bad_authorization_headers(verifier: JWTVerifier, header: str | None) -> None:
    """Missing header, wrong scheme, empty or doubled credentials: the same generic refusal."""
    with pytest.raises(InvalidToken):
        await verifier.verify(header)
