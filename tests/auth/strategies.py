"""Hypothesis strategies for hostile JWTs and JWKS documents: wrong types, nesting, non-finite numbers, junk."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from tests.auth.signing import Keys, b64, claims, default_header, issuer_of, raw_claims, sign_segments

KINDS = ("hs", "rs", "es", "ed")
ALGS = ("HS256", "HS512", "RS256", "RS512", "PS256", "ES256", "ES384", "EdDSA", "none", "None", "")
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# JSON text that json.dumps never writes: numbers past float range, past Python's int digit limit, JS constants.
LITERALS = ("1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1" + "0" * 400, "9" * 5000, "-0", "1.5e308", "1E2")

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["es-1", "ed-1", "JWT", "livetoken", "https://hs.test/", "\ud800", "\x00"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def json_text(draw: st.DrawFn) -> str:
    """JSON text of a value: generated, a literal json.dumps would not write, or nesting of any depth."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return draw(st.sampled_from(LITERALS))
    if choice == 1:
        depth = draw(st.sampled_from([5, 15, 16, 17, 40, 900, 1500]))
        return draw(st.sampled_from(["[", '{"a":'])) * depth + "1" + draw(st.sampled_from(["]", "}"])) * depth
    return json.dumps(draw(json_values))


@st.composite
def json_object_text(draw: st.DrawFn, base: dict[str, Any], names: tuple[str, ...], *, loose: bool) -> bytes:
    """`base` as JSON text with up to two of `names` dropped or replaced by any JSON text, maybe an extra member;
    when `loose`, maybe not UTF-8."""
    count = draw(st.sampled_from([0, 0, 0, 1, 1, 2]))
    chosen = draw(st.lists(st.sampled_from(names), min_size=count, max_size=count, unique=True))
    changed = {name: draw(st.none() | json_text()) for name in chosen}
    members = [
        f"{json.dumps(name)}: {changed.get(name) or json.dumps(value)}"
        for name, value in base.items()
        if name not in changed or changed[name] is not None
    ]
    extra = draw(st.sampled_from([[], [], [], ["x"], ["crit"], ["b64"], ["cty"], [draw(st.sampled_from(names))]]))
    members.extend(f"{json.dumps(name)}: {draw(json_text())}" for name in extra)
    text = "{" + ", ".join(members) + "}"
    return text.encode(draw(st.sampled_from(["utf-8", "utf-16", "utf-8-sig"])) if loose else "utf-8")


def _mangle(segment: str, how: str) -> str:
    if how == "pad":
        return segment + "=" * (-len(segment) % 4 or 2)
    if how == "std":
        return segment.replace("-", "+").replace("_", "/")
    if how == "junk":
        return segment[:3] + "!*" + segment[3:]
    if how == "space":
        return segment[:3] + " " + segment[3:]
    if how == "cut":
        return segment[:-1]
    return segment


@st.composite
def tokens(draw: st.DrawFn, keys: Keys) -> str:
    """A JWT of one of the test issuers. Each draw varies one layer (claims, header or segments) of an otherwise
    valid token, signed with the right key, so every check is reached; or all of them at once."""
    kind = draw(st.sampled_from(KINDS))
    focus = draw(st.one_of(*(st.just(f) for f in ("claims", "times", "header", "segments", "anything"))))
    header: bytes | dict[str, Any] = default_header(kind)
    iat = claims(issuer_of(kind))["iat"]
    payload: bytes | dict[str, Any] = {**claims(issuer_of(kind)), "jti": "j", "nbf": iat, "org": "acme"}
    loose = focus == "anything"
    if focus in ("header", "anything"):
        assert isinstance(header, dict)
        header = {**header, "typ": "JWT", "alg": draw(st.sampled_from([header["alg"]] * 12 + list(ALGS)))}
        header = draw(json_object_text(header, ("alg", "kid", "typ"), loose=loose))
    if focus in ("claims", "anything"):
        assert isinstance(payload, dict)
        names = ("iss", "aud", "sub", "exp", "nbf", "iat", "jti", "org", "scope")
        payload = draw(json_object_text(payload, names, loose=loose))
    if focus == "times":  # a NumericDate of any JSON shape: the checks PyJWT's int() would have made
        assert isinstance(payload, dict)
        numbers = st.sampled_from(LITERALS) | st.floats().map(json.dumps) | st.integers().map(str) | json_text()
        payload = raw_claims(kind, **{draw(st.sampled_from(["exp", "nbf", "iat"])): draw(numbers)})
    head, body = b64(header), b64(payload)
    signing = draw(st.sampled_from(["right"] * 6 + ["other-kind", "random", "empty"])) if loose else "right"
    if signing == "random":
        token = f"{head}.{body}.{b64(draw(st.binary(max_size=80)))}"
    elif signing == "empty":
        token = f"{head}.{body}."
    else:
        signer = kind if signing == "right" else draw(st.sampled_from(KINDS))
        token = sign_segments(keys, signer, head, body)
    if focus not in ("segments", "anything"):
        return token
    parts = token.split(".")
    which = draw(st.integers(0, 2))
    parts[which] = _mangle(parts[which], draw(st.sampled_from(["none", "pad", "std", "junk", "space", "cut"])))
    return ".".join(parts)


@st.composite
def authorizations(draw: st.DrawFn, keys: Keys) -> str:
    """An Authorization header value: mostly `Bearer <generated JWT>`, sometimes any text at all."""
    choice = draw(st.integers(0, 19))
    if choice == 0:
        return draw(st.text(max_size=60))
    if choice == 1:
        return "Bearer " + draw(st.text(alphabet=B64URL + ".=+/ \t\x00\xa0\u2603", max_size=80))
    scheme = draw(st.sampled_from(["Bearer "] * 12 + ["bearer  ", "BEARER ", "Bearer\t", "Basic "]))
    return scheme + draw(tokens(keys))


@st.composite
def jwks_documents(draw: st.DrawFn, pool: list[dict[str, Any]]) -> bytes:
    """A JWKS body: real keys of every type, the same keys with members dropped or replaced, junk entries,
    nesting, non-JSON and documents that are not a JWKS at all."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.binary(max_size=64))
    if choice == 1:
        return draw(json_text()).encode()
    entries: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 3))
        if kind == 3:
            entries.append(draw(json_text()))
            continue
        jwk = dict(draw(st.sampled_from(pool)))
        if kind > 0:
            for name in draw(st.lists(st.sampled_from([*jwk, "use", "alg", "kid", "key_ops", "d", "crv"]), max_size=3)):
                if draw(st.booleans()):
                    jwk.pop(name, None)
                else:
                    jwk[name] = draw(json_values | st.sampled_from(["sig", "enc", "ES256", "P-384", "X25519", "AQAB"]))
        entries.append(json.dumps(jwk))
    return ('{"keys": [' + ", ".join(entries) + "]}").encode()
