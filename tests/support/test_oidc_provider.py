"""The OpenID provider harness itself: real discovery, real JWT access and ID tokens, key rotation, restarts.

Checked with plain httpx and PyJWT, so a failure here is the harness's, never livetoken's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from tests.support.oidc_provider import OTHER_RESOURCE, OIDCProvider


@pytest.fixture(scope="module")
def provider() -> Iterator[OIDCProvider]:
    """One provider for the module: a node start costs about half a second."""
    with OIDCProvider() as started:
        yield started


def verify(provider: OIDCProvider, token: str, audience: str) -> dict[str, Any]:
    """Verify `token` the way a relying party does: the key from jwks_uri by kid, RS256, iss, aud, exp."""
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(provider.jwks())[kid]
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        audience=audience,
        issuer=provider.issuer,
        options={"require": ["iss", "sub", "aud", "exp", "iat"]},
    )
    return claims


def test_discovery_names_the_issuer_and_a_local_jwks_uri(provider: OIDCProvider) -> None:
    """Discovery says issuer == the URL it is served under, and a jwks_uri on 127.0.0.1 that serves RSA keys."""
    document = provider.discovery()
    assert document["issuer"] == provider.issuer
    assert not provider.issuer.endswith("/")
    assert document["jwks_uri"].startswith(f"{provider.issuer}/")
    assert "client_credentials" in document["grant_types_supported"]
    keys = provider.jwks()["keys"]
    assert [(k["kty"], k["kid"]) for k in keys] == [("RSA", provider.kid)]
    assert all("d" not in k for k in keys)  # public halves only


def test_client_credentials_token_is_an_rs256_at_jwt_for_livetoken(provider: OIDCProvider) -> None:
    """A client-credentials access token is a JWT (typ at+jwt, RS256) for aud livetoken with client_id and scope."""
    token = provider.client_credentials_token(scope="live:voice live:video")
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["typ"], header["kid"]) == ("RS256", "at+jwt", provider.kid)
    claims = verify(provider, token, "livetoken")
    assert claims["client_id"] == claims["sub"] == "livetoken-test"
    assert set(claims["scope"].split()) == {"live:voice", "live:video"}
    assert claims["tenant"] == "acme"


def test_other_client_and_other_audience(provider: OIDCProvider) -> None:
    """Tokens can be had for the second client, and for another resource's audience."""
    other = verify(provider, provider.client_credentials_token("other-client"), "livetoken")
    assert (other["client_id"], other["tenant"]) == ("other-client", "globex")
    elsewhere = provider.client_credentials_token(scope="other:read", resource=OTHER_RESOURCE)
    assert verify(provider, elsewhere, "other-api")["scope"] == "other:read"
    with pytest.raises(jwt.InvalidAudienceError):
        verify(provider, elsewhere, "livetoken")


def test_a_wrong_secret_is_refused(provider: OIDCProvider) -> None:
    """The provider really authenticates clients: a wrong secret gets invalid_client, not a token."""
    answer = httpx.post(
        f"{provider.issuer}/token",
        data={"grant_type": "client_credentials"},
        auth=("livetoken-test", "not-the-secret"),
    )
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_client")


def test_id_token_from_the_scripted_login(provider: OIDCProvider) -> None:
    """The code flow driven over HTTP yields an ID token for alice, addressed to the requesting client."""
    for client_id in ("livetoken-test", "other-client"):
        token = provider.id_token(client_id)
        assert jwt.get_unverified_header(token)["alg"] == "RS256"
        claims = verify(provider, token, client_id)
        assert claims["sub"] == "alice"
        assert "nonce" in claims


def test_rotation_replaces_the_signing_key(provider: OIDCProvider) -> None:
    """After rotate_keys() new tokens carry a new kid, and the old kid is gone from jwks_uri."""
    old_kid = provider.kid
    old_token = provider.client_credentials_token()
    new_kid = provider.rotate_keys()
    assert new_kid != old_kid
    assert [k["kid"] for k in provider.jwks()["keys"]] == [new_kid]
    token = provider.client_credentials_token()
    assert jwt.get_unverified_header(token)["kid"] == new_kid
    assert verify(provider, token, "livetoken")["client_id"] == "livetoken-test"
    assert verify(provider, provider.id_token(), "livetoken-test")["sub"] == "alice"
    with pytest.raises(KeyError):
        verify(provider, old_token, "livetoken")


def test_stop_then_restart_serves_again(provider: OIDCProvider) -> None:
    """stop() takes the provider down; restart() brings it back on the same issuer with the same keys."""
    issuer, kid = provider.issuer, provider.kid
    provider.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(provider.discovery_url, timeout=2)
    provider.restart()
    assert (provider.issuer, provider.kid) == (issuer, kid)
    assert provider.discovery()["issuer"] == issuer
    assert verify(provider, provider.client_credentials_token(), "livetoken")["iss"] == issuer
