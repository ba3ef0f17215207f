"""The hostile-token corpus: every token here must be refused with the one generic 401, by a named check.

`CORPUS` maps a case id to a function of the test keys that builds the token (tokens carry the current time).
The JWT BCP classics come first, then type confusion in the header and the claims, nesting, numbers that are not
finite, non-UTF-8 JSON, and segments that only a loose base64 decoder would read. Most of the later cases are
signed with the issuer's real key, so they reach the check they are about rather than failing on the signature.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from tests.auth.signing import (
    HS_SECRET,
    Keys,
    b64,
    claims,
    default_header,
    public_jwk,
    raw_claims,
    sign,
    sign_raw,
    sign_segments,
)

Build = Callable[[Keys], str]
HS = "https://hs.test/"


def hs_sign(header: dict[str, Any], payload: bytes, key: bytes = HS_SECRET.encode()) -> str:
    """An HS256 signature over arbitrary bytes, with any key (the RSA public PEM, say)."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    return signing_input + "." + b64(hmac.new(key, signing_input.encode(), "sha256").digest())


def forge(header: dict[str, Any], payload: dict[str, Any] | list[Any], signature: bytes = b"sig") -> str:
    """A token with arbitrary header and payload and a made-up signature."""
    return f"{b64(header)}.{b64(payload)}.{b64(signature)}"


def _attacker_es(header: dict[str, Any]) -> Build:
    def build(_keys: Keys) -> str:
        attacker = ec.generate_private_key(ec.SECP256R1())
        extra = {"jwk": public_jwk(attacker.public_key(), "EC", "attacker", "ES256")} if "jwk" in header else {}
        return jwt.encode(claims("https://es.test/"), attacker, algorithm="ES256", headers={**header, **extra})

    return build


def _now() -> int:
    return int(time.time())


CLASSIC: dict[str, Build] = {
    "alg-none": lambda k: forge({"alg": "none", "typ": "JWT"}, claims(HS), b""),
    "alg-None": lambda k: forge({"alg": "None"}, claims(HS), b""),
    "alg-NONE-empty-sig": lambda k: f"{b64({'alg': 'NONE'})}.{b64(claims(HS))}.",
    "hs256-signed-with-rsa-public-pem": lambda k: hs_sign(
        {"alg": "HS256", "typ": "JWT"}, json.dumps(claims("https://rs.test/")).encode(), k.rsa_public_pem
    ),
    "hs256-token-to-rs256-issuer": lambda k: jwt.encode(claims("https://rs.test/"), HS_SECRET, algorithm="HS256"),
    "rs512-not-allowed": lambda k: jwt.encode(claims("https://rs.test/"), k.rsa, algorithm="RS512"),
    "ps256-not-allowed": lambda k: jwt.encode(claims("https://rs.test/"), k.rsa, algorithm="PS256"),
    "expired-beyond-leeway": lambda k: sign(k, "hs", exp=_now() - 120),
    "future-nbf": lambda k: sign(k, "hs", nbf=_now() + 600),
    "iat-in-future": lambda k: sign(k, "hs", iat=_now() + 600),
    "too-old-iat": lambda k: sign(k, "hs", iat=_now() - 7200, exp=_now() + 60),
    "wrong-issuer": lambda k: jwt.encode(claims("https://evil.test/"), HS_SECRET, algorithm="HS256"),
    "iss-not-a-string": lambda k: hs_sign({"alg": "HS256"}, json.dumps({**claims(HS), "iss": [HS]}).encode()),
    "wrong-audience": lambda k: sign(k, "hs", aud="someone-else"),
    "missing-audience": lambda k: sign(k, "hs", aud=None),
    "missing-sub": lambda k: sign(k, "hs", sub=None),
    "empty-sub": lambda k: sign(k, "hs", sub=""),
    "non-string-sub": lambda k: sign(k, "hs", sub=12345),
    "oversized-sub": lambda k: sign(k, "hs", sub="a" * 1000),
    "missing-exp": lambda k: sign(k, "hs", exp=None),
    "missing-iat-with-max-age": lambda k: sign(k, "hs", iat=None),
    "exp-not-a-number": lambda k: sign(k, "hs", exp="tomorrow"),
    "unknown-kid": lambda k: sign(k, "es", headers={"kid": "nope"}),
    "kid-path-traversal": lambda k: sign(k, "es", headers={"kid": "../../../../etc/passwd"}),
    "kid-sql-injection": lambda k: sign(k, "es", headers={"kid": "' OR '1'='1"}),
    "kid-not-a-string": lambda k: forge({"alg": "ES256", "kid": {"$ne": 1}}, claims("https://es.test/")),
    "tampered-payload": lambda k: (
        f"{sign(k, 'rs').split('.')[0]}.{b64({**claims('https://rs.test/'), 'sub': 'admin'})}."
        f"{sign(k, 'rs').split('.')[2]}"
    ),
    "tampered-header": lambda k: "{}.{}.{}".format(
        b64({"alg": "RS256", "typ": "JWT", "x": 1}), *sign(k, "rs").split(".")[1:]
    ),
    "stripped-signature": lambda k: sign(k, "rs").rsplit(".", 1)[0] + ".",
    "signature-from-other-rsa-key": lambda k: jwt.encode(claims("https://rs.test/"), k.rsa_other, algorithm="RS256"),
    "es256-key-not-in-jwks": _attacker_es({"kid": "es-1"}),
    "embedded-jwk-attacker-key": _attacker_es({"kid": "attacker", "jwk": True}),
    "jku-elsewhere": _attacker_es({"kid": "attacker", "jku": "http://127.0.0.1:9/evil-jwks.json"}),
    "x5u-elsewhere": _attacker_es({"kid": "x", "x5u": "http://127.0.0.1:9/c.pem"}),
    "unknown-crit": lambda k: sign(k, "hs", headers={"crit": ["exp-ext"], "exp-ext": 1}),
    "nested-jwt": lambda k: sign(k, "hs", headers={"cty": "JWT"}),
    "duplicate-claims": lambda k: hs_sign(
        {"alg": "HS256"}, json.dumps(claims(HS))[:-1].encode() + b', "sub": "admin"}'
    ),
    "weird-typ": lambda k: sign(k, "hs", headers={"typ": "secevent+jwt"}),
    "garbage-base64": lambda k: "!!!.@@@.###",
    "non-json-segments": lambda k: f"{b64(b'hello')}.{b64(b'world')}.{b64(b'sig')}",
    "payload-is-array": lambda k: forge({"alg": "HS256"}, [1, 2]),
    "two-segments": lambda k: "abc.def",
    "four-segments": lambda k: sign(k, "hs") + ".extra",
    "empty-segments": lambda k: "..",
    "oversized": lambda k: sign(k, "hs", pad="x" * 10_000),
    "jwe-shaped": lambda k: "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d",
    "token-for-other-issuer-claiming-ours": lambda k: jwt.encode(claims("https://ed.test/"), k.rsa, algorithm="RS256"),
    "exp-numeric-string": lambda k: sign(k, "hs", exp=str(_now() + 600)),
    "exp-boolean": lambda k: sign(k, "hs", exp=True),
    "nbf-not-a-number": lambda k: sign(k, "hs", nbf="now"),
    "iat-not-a-number": lambda k: sign(k, "hs", iat="today"),
    "aud-list-with-a-number": lambda k: sign(k, "hs", aud=["livetoken", 5]),
    "aud-empty-list": lambda k: sign(k, "hs", aud=[]),
    "aud-object": lambda k: sign(k, "hs", aud={"livetoken": True}),
    "jti-not-a-string": lambda k: sign(k, "hs", jti=7),
    "hs-kid-not-a-string": lambda k: hs_sign({"alg": "HS256", "kid": 5}, json.dumps(claims(HS)).encode()),
    "b64-false-unencoded-payload": lambda k: sign(k, "hs", headers={"b64": False}),
    "signature-cut-short": lambda k: sign(k, "hs")[:-6],
    "signature-not-base64": lambda k: sign(k, "hs").rsplit(".", 1)[0] + ".***",
}


def _header(kind: str, **members: Any) -> Build:
    """A token of `kind`, correctly signed, whose header has these members (None deletes one)."""
    head = {k: v for k, v in {**default_header(kind), **members}.items() if v is not None}
    return lambda k: sign_raw(k, kind, header=head)


def _literal(kind: str, **literal: str) -> Build:
    """A token of `kind`, correctly signed, with claims given as literal JSON text (`exp="NaN"`)."""
    return lambda k: sign_raw(k, kind, payload=raw_claims(kind, **literal))


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


HEADER_TYPES: dict[str, Build] = {
    "alg-list": _header("hs", alg=["HS256"]),
    "alg-object": _header("hs", alg={"HS256": True}),
    "alg-number": _header("hs", alg=256),
    "alg-null": lambda k: sign_raw(k, "hs", header={"alg": None}),
    "alg-missing": lambda k: sign_raw(k, "hs", header={"typ": "JWT"}),
    "kid-list-for-jwks": _header("es", kid=["es-1"]),
    "kid-too-long": _header("es", kid="k" * 300),
    "typ-list": _header("hs", typ=["JWT"]),
    "typ-null": lambda k: sign_raw(k, "hs", header={"alg": "HS256", "typ": None}),
    "typ-number": _header("hs", typ=1),
    "crit-empty-list": _header("hs", crit=[]),
    "crit-object": _header("hs", crit={"exp": True}),
    "cty-list": _header("hs", cty=["JWT"]),
    "cty-number": _header("hs", cty=7),
    "b64-string": _header("hs", b64="false"),
    "header-is-array": lambda k: sign_raw(k, "hs", header=b'["HS256"]'),
    "header-nested-1500": lambda k: sign_raw(k, "hs", header=f'{{"alg": "HS256", "x": {_deep(1500)}}}'.encode()),
    "header-nested-20": lambda k: sign_raw(k, "hs", header=f'{{"alg": "HS256", "x": {_deep(20)}}}'.encode()),
    "header-nan-member": lambda k: sign_raw(k, "hs", header=b'{"alg": "HS256", "x": NaN}'),
    "header-utf16": lambda k: sign_raw(k, "hs", header=json.dumps(default_header("hs")).encode("utf-16")),
    "header-utf8-bom": lambda k: sign_raw(k, "hs", header=b"\xef\xbb\xbf" + json.dumps(default_header("hs")).encode()),
}

CLAIM_TYPES: dict[str, Build] = {
    "iss-object": _literal("hs", iss='{"https://hs.test/": 1}'),
    "iss-null": _literal("hs", iss="null"),
    "aud-nested-list": _literal("hs", aud='[["livetoken"]]'),
    "aud-null": _literal("hs", aud="null"),
    "sub-list": _literal("hs", sub='["alice"]'),
    "sub-object": _literal("hs", sub='{"id": "alice"}'),
    "sub-boolean": _literal("hs", sub="true"),
    "sub-null": _literal("hs", sub="null"),
    "sub-blank": _literal("hs", sub='"   "'),
    "sub-control-characters": _literal("hs", sub='"alice\\n{\\"admin\\": true}"'),
    "sub-lone-surrogate": _literal("hs", sub='"\\ud800"'),
    "private-claim-lone-surrogate": _literal("hs", name='"\\udc00x"'),
    "tenant-object": _literal("ed", org='{"id": 1}'),
    "tenant-list": _literal("ed", org='["acme"]'),
    "tenant-boolean": _literal("ed", org="false"),
    "tenant-float": _literal("ed", org="1.5"),
    "tenant-huge-int": _literal("ed", org="9" * 300),
    "tenant-oversized": _literal("ed", org=json.dumps("t" * 300)),
    "tenant-control-characters": _literal("ed", org='"acme\\u0000"'),
    "payload-nested-1500": _literal("hs", extra=_deep(1500)),
    "payload-nested-20": _literal("hs", extra=_deep(20)),
    "nested-duplicate-member": _literal("hs", extra='{"a": 1, "a": 2}'),
    "payload-utf16": lambda k: sign_raw(k, "hs", payload=json.dumps(claims(HS)).encode("utf-16")),
    "payload-latin1": lambda k: sign_raw(
        k, "hs", payload=json.dumps({**claims(HS), "n": "é"}, ensure_ascii=False).encode("latin-1")
    ),
    "int-past-digit-limit": _literal("hs", extra="7" * 5000),
}

NUMBERS: dict[str, Build] = {
    "exp-1e400": _literal("hs", exp="1e400"),
    "exp-minus-1e400": _literal("hs", exp="-1e400"),
    "exp-Infinity": _literal("hs", exp="Infinity"),
    "exp-NaN": _literal("hs", exp="NaN"),
    "exp-huge-int": _literal("hs", exp="1" + "0" * 400),
    "exp-false": _literal("hs", exp="false"),
    "exp-null": _literal("hs", exp="null"),
    "exp-list": _literal("hs", exp="[9999999999]"),
    "exp-object": _literal("hs", exp='{"$gt": 0}'),
    "nbf-NaN": _literal("hs", nbf="NaN"),
    "nbf-minus-Infinity": _literal("hs", nbf="-Infinity"),
    "nbf-true": _literal("hs", nbf="true"),
    "iat-NaN-bypassing-max-age": _literal("hs", iat="NaN"),
    "iat-Infinity": _literal("hs", iat="Infinity"),
    "iat-true": _literal("hs", iat="true"),
    "private-claim-NaN": _literal("hs", score="NaN"),
}


def _signature(transform: Callable[[str], str]) -> Build:
    """A good HS256 token with its signature segment rewritten: the same bytes to a loose base64 reader."""

    def build(keys: Keys) -> str:
        head, payload, sig = sign(keys, "hs").split(".")
        return f"{head}.{payload}.{transform(sig)}"

    return build


def _alphabet_swapped(keys: Keys) -> str:
    """A good token whose signature is spelled in the `+/` alphabet (retries until it has a `-` or `_`)."""
    for n in range(100):
        head, payload, sig = sign(keys, "hs", jti=f"swap-{n}").split(".")
        if "-" in sig or "_" in sig:
            return f"{head}.{payload}.{sig.replace('-', '+').replace('_', '/')}"
    raise AssertionError("no signature with - or _ in 100 tries")


def _non_canonical(sig: str) -> str:
    """The last character with its two unused low bits set: the same 32 bytes, spelled differently."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(sig) % 4 == 3  # an HMAC-SHA256 signature: 43 characters
    return sig[:-1] + alphabet[alphabet.index(sig[-1]) | 0b01]


def _segments(header: Callable[[str], str], payload: Callable[[str], str]) -> Build:
    """A good HS256 token with its header and payload segments rewritten, then correctly signed as written."""

    def build(keys: Keys) -> str:
        head, body = header(b64(default_header("hs"))), payload(b64(claims(HS, n="??>>??>>")))
        assert (head, body) != (b64(default_header("hs")), b64(claims(HS, n="??>>??>>")))
        return sign_segments(keys, "hs", head, body)

    return build


def _same(segment: str) -> str:
    return segment


SEGMENTS: dict[str, Build] = {
    "signature-padded": _signature(lambda s: s + "="),
    "signature-plus-slash-alphabet": _alphabet_swapped,
    "signature-junk-characters": _signature(lambda s: s[:8] + "!!!!" + s[8:]),
    "signature-nul-appended": _signature(lambda s: s + "\x00"),
    "signature-space-inside": _signature(lambda s: s[:-4] + " " + s[-4:]),
    "signature-non-canonical-last-char": _signature(_non_canonical),
    "signature-non-latin1": _signature(lambda s: s + "\u2603"),
    "token-trailing-nbsp": _signature(lambda s: s + "\xa0"),
    "header-padded": _segments(lambda h: h + "=" * (-len(h) % 4 or 4), _same),
    "payload-padded": _segments(_same, lambda p: p + "=" * (-len(p) % 4 or 4)),
    "payload-standard-alphabet": _segments(_same, lambda p: p.replace("-", "+").replace("_", "/")),
    "payload-with-newline": _segments(_same, lambda p: p[:10] + "\n" + p[10:]),
}

CORPUS: dict[str, Build] = {**CLASSIC, **HEADER_TYPES, **CLAIM_TYPES, **NUMBERS, **SEGMENTS}
