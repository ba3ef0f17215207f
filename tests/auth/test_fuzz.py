"""Property tests (Hypothesis, a few seconds each, derandomized so CI is stable).

Generated JWTs into the verifier: a caller comes out only when PyJWT agrees the token is valid, and otherwise the
one generic InvalidToken by a named check, never another exception. Generated JWKS documents into the parser: only
usable keys, skipped keys with a bounded reason, or the document refused as a whole.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from service.auth import CallerIdentity, JWTVerifier, may_use
from service.auth.compact import Rejected, json_object, strict_json_object
from service.auth.jwk_set import MIN_RSA_BITS, SKIP_REASONS, JWKSRejected, key_type_for, parse_jwks
from service.config import ASYMMETRIC_ALGORITHMS, ProfileConfig, RequireRule
from service.errors import InvalidToken
from tests.auth.signing import AUD, HS_SECRET, Keys, public_jwk
from tests.auth.strategies import authorizations, jwks_documents

FUZZ = settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
RULED = ProfileConfig(model="m", require=RequireRule(scopes=["a"], claims={"org": "acme", "sub": ["alice", "7"]}))
ISSUER_KEYS = {"https://hs.test/": "hs", "https://rs.test/": "rs", "https://es.test/": "es", "https://ed.test/": "ed"}


def _pyjwt_accepts(token: str, caller: CallerIdentity, keys: Keys) -> None:
    """PyJWT verifies the same token with the issuer's key: ours is never the looser of the two."""
    key: Any = {
        "hs": HS_SECRET,
        "rs": keys.rsa.public_key(),
        "es": keys.ec.public_key(),
        "ed": keys.ed.public_key(),
    }[ISSUER_KEYS[caller.issuer]]
    alg = jwt.get_unverified_header(token)["alg"]
    jwt.decode(
        token,
        key,
        algorithms=[alg],
        audience=AUD,
        issuer=caller.issuer,
        leeway=30,
        options={"require": ["exp", "iss", "aud", "iat"]},
    )


@FUZZ
@given(data=st.data())
async def test_generated_tokens_yield_a_valid_caller_or_the_generic_refusal(
    verifier: JWTVerifier, keys: Keys, data: st.DataObject
) -> None:
    """Any Authorization value: a caller for a strictly encoded token that PyJWT also accepts, or InvalidToken from
    a named check."""
    authorization = data.draw(authorizations(keys))
    refused: InvalidToken | None = None
    try:
        caller = await verifier.verify(authorization)
    except InvalidToken as exc:
        refused = exc
    event("accepted" if refused is None else f"refused: {refused.internal_reason}")
    if refused is not None:
        assert refused.internal_reason != "unexpected"
        assert refused.detail == "The bearer token is missing or invalid."
        return
    assert caller.subject.strip()
    # What comes out can key a rate limit, be hashed, logged and judged by a profile rule, whatever came in.
    assert f"{caller.caller_key}\x1f{caller.tenant}".encode()
    assert may_use(RULED, caller) in (True, False)
    token = authorization.split(" ", 1)[1].strip(" \t")
    for segment in token.split("."):  # RFC 7515: unpadded base64url, one spelling per byte string
        assert base64.urlsafe_b64encode(base64.urlsafe_b64decode(segment + "==")).rstrip(b"=").decode() == segment
    _pyjwt_accepts(token, caller, keys)


def _pool(keys: Keys) -> list[dict[str, Any]]:
    """Real public JWKs of every kind an IdP publishes, usable or not by a given issuer."""
    p384 = ec.generate_private_key(ec.SECP384R1())
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - a key to be refused
    return [
        public_jwk(keys.ec.public_key(), "EC", "es-1", "ES256"),
        {**ECAlgorithm.to_jwk(keys.ec_rotated.public_key(), as_dict=True), "kid": "es-2"},
        {**ECAlgorithm.to_jwk(p384.public_key(), as_dict=True), "kid": "p384"},
        public_jwk(keys.rsa.public_key(), "RSA", "rs-1", "RS256"),
        {**RSAAlgorithm.to_jwk(keys.rsa_other.public_key(), as_dict=True), "kid": "rs-enc", "use": "enc"},
        {**RSAAlgorithm.to_jwk(weak.public_key(), as_dict=True), "kid": "weak"},
        public_jwk(keys.ed.public_key(), "OKP", "ed-1", "EdDSA"),
        {**OKPAlgorithm.to_jwk(keys.ed, as_dict=True), "kid": "ed-private"},
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
    ]


def test_generated_jwks_documents_yield_keys_skips_or_a_refusal(keys: Keys) -> None:
    """Any body: usable keys of a type the issuer's algorithms verify, skips with a bounded reason, one entry each;
    or JWKSRejected. Never another exception."""
    pool = _pool(keys)

    @FUZZ
    @given(
        body=jwks_documents(pool), algorithms=st.frozensets(st.sampled_from(sorted(ASYMMETRIC_ALGORITHMS)), min_size=1)
    )
    def check(body: bytes, algorithms: frozenset[str]) -> None:
        refused: JWKSRejected | None = None
        try:
            contents = parse_jwks(body, algorithms)
        except JWKSRejected as exc:
            refused = exc
        if refused is not None:
            event(f"refused: {refused.reason}")
            assert refused.reason in ("not_json", "not_a_jwks", "too_deep")
            return
        event("kept some" if contents.keys else "kept none")
        entries = json.loads(body)["keys"]
        assert len(contents.keys) + len(contents.skipped) == len(entries)
        assert {s.reason for s in contents.skipped} <= set(SKIP_REASONS)
        families = {key_type_for(alg) for alg in algorithms}
        for kid, key in contents.keys.items():
            assert isinstance(kid, str)
            assert key.key_type in families
            assert getattr(key.key, "key_size", MIN_RSA_BITS) >= MIN_RSA_BITS or key.key_type == "EC"

    started = time.monotonic()
    check()
    assert time.monotonic() - started < 60


def _decided(decode: Any, raw: bytes) -> Any:
    try:
        return ("accepted", decode(raw))
    except Rejected as exc:
        return ("refused", exc.reason)


_KEYS = st.sampled_from(["iss", "sub", "aud", "exp", "a:b", "https://x/", "é", "\u2028", ""])
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('ab:/"\\\u00e9\u2028\x01'), max_size=8)
)
_MEMBERS = st.lists(
    st.tuples(_KEYS, _LEAVES | st.lists(_LEAVES, max_size=3) | st.dictionaries(_KEYS, _LEAVES, max_size=2)),
    max_size=6,
)


@FUZZ
@given(members=_MEMBERS, spacing=st.sampled_from(["", " ", "\n"]), escape=st.booleans())
def test_the_fast_json_path_decides_every_segment_as_the_strict_one(
    members: list[tuple[str, Any]], spacing: str, escape: bool
) -> None:
    """Segments written member by member (repeated names, colons in names and strings, lists, nested objects,
    huge integers, escapes or raw UTF-8): the verifier's JSON reading accepts exactly what the strict stdlib
    path accepts, with the same value, and refuses the rest for the same reason."""
    body = f",{spacing}".join(
        f"{json.dumps(k, ensure_ascii=escape)}:{spacing}{json.dumps(v, ensure_ascii=escape)}" for k, v in members
    )
    raw = ("{" + spacing + body + spacing + "}").encode()
    assert _decided(json_object, raw) == _decided(strict_json_object, raw)
    names = [k for k, _ in members]
    if len(set(names)) < len(names):
        event("repeated member")
        assert _decided(json_object, raw) == ("refused", "duplicate_member")
