"""OpenID Connect discovery (`discovery = true`): the keys come from the `jwks_uri` of the document at the
configured issuer's `/.well-known/openid-configuration`, and from nowhere else.

What a real provider does is in tests/auth/test_oidc_provider.py (panva's oidc-provider); here a local provider's
two documents are bent to show each refusal: an issuer that is not the configured one exactly, a plain-http
`jwks_uri` off this host, a token pointing at other keys, a provider that goes down.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from structlog.testing import capture_logs

from service.auth import JWTVerifier
from service.auth.discovery import parse_discovery
from service.auth.jwk_set import JWKSRejected
from service.config import ConfigError, Duration, IssuerConfig
from service.config.rules import check_rules
from service.errors import InvalidToken
from service.metrics import Metrics
from tests.auth.signing import AUD, Keys, claims, public_jwk
from tests.support.idp_server import DISCOVERY_PATH, JWKS_PATH, IdPServer


@pytest.fixture
def idp(keys: Keys) -> Iterator[IdPServer]:
    """A provider on this host publishing the RSA key `rsa-1`."""
    server = IdPServer()
    server.jwks = {"keys": [public_jwk(keys.rsa.public_key(), "RSA", "rsa-1", "RS256")]}
    yield server
    server.close()


@asynccontextmanager
async def discovering(issuer: str, metrics: Metrics, **opts: Any) -> AsyncIterator[JWTVerifier]:
    """A started verifier with one issuer configured by its URL alone."""
    cfg = IssuerConfig(
        issuer=issuer,
        audiences=[AUD],
        algorithms=["RS256"],
        discovery=True,
        jwks_refresh_cooldown=Duration(opts.pop("cooldown", 0.0)),
        jwks_timeout=Duration(0.5),
        **opts,
    )
    async with httpx.AsyncClient() as http:
        verifier = JWTVerifier([cfg], {}, http, metrics)
        await verifier.start()
        yield verifier


def token(keys: Keys, issuer: str, kid: str = "rsa-1", headers: dict[str, Any] | None = None, **over: Any) -> str:
    return "Bearer " + jwt.encode(
        claims(issuer, **over), keys.rsa, algorithm="RS256", headers={"kid": kid, **(headers or {})}
    )


async def test_the_issuer_url_alone_finds_the_keys(idp: IdPServer, keys: Keys) -> None:
    """Start-up reads the document, then its jwks_uri; a token verifies; nothing else was fetched."""
    metrics = Metrics()
    with capture_logs() as logs:
        async with discovering(idp.issuer, metrics) as verifier:
            caller = await verifier.verify(token(keys, idp.issuer))
            status = verifier.jwks_status()
    assert (caller.issuer, caller.subject, status) == (idp.issuer, "alice", "ok")
    assert idp.paths == [DISCOVERY_PATH, JWKS_PATH]
    assert [entry["jwks_uri"] for entry in logs if entry["event"] == "oidc_discovered"] == [idp.jwks_url]
    assert metrics.registry.get_sample_value("livetoken_jwks_refreshes_total", {"outcome": "ok"}) == 1.0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"issuer": "ISSUER/"}, "issuer_mismatch"),  # a trailing slash is another issuer (Discovery §4.3)
        ({"issuer": "https://evil.example"}, "issuer_mismatch"),
        ({"jwks_uri": "http://keys.example/jwks.json"}, "jwks_uri_not_https"),
        ({"jwks_uri": None}, "no_jwks_uri"),
    ],
)
async def test_a_document_livetoken_may_not_trust_gives_no_keys(
    idp: IdPServer, keys: Keys, change: dict[str, Any], reason: str
) -> None:
    """The document must name the configured issuer exactly and an https jwks_uri (http only on loopback): else no
    key is fetched, the issuer is `unavailable` and its tokens get the generic 401."""
    for name, value in change.items():
        if value is None:
            idp.document.pop(name)
        else:
            idp.document[name] = value.replace("ISSUER", idp.issuer)
    with capture_logs() as logs:
        async with discovering(idp.issuer, Metrics()) as verifier:
            with pytest.raises(InvalidToken) as refused:
                await verifier.verify(token(keys, idp.issuer))
            status = verifier.jwks_status()
    assert status == "unavailable"
    assert refused.value.detail == "The bearer token is missing or invalid."  # the same for every refusal
    assert JWKS_PATH not in idp.paths
    assert {(e["event"], e["reason"]) for e in logs if e["event"] == "oidc_discovery_failed"} == {
        ("oidc_discovery_failed", reason)
    }


async def test_a_token_never_chooses_where_keys_come_from(idp: IdPServer, keys: Keys) -> None:
    """A token whose header points at another provider's keys (jku, x5u) and names a kid the issuer lacks:
    refused, and only the configured issuer's documents were fetched (the unknown kid refreshes them once)."""
    other = IdPServer()
    try:
        headers = {"jku": other.jwks_url, "x5u": other.jwks_url}
        async with discovering(idp.issuer, Metrics()) as verifier:
            with pytest.raises(InvalidToken):
                await verifier.verify(token(keys, idp.issuer, kid="attacker-1", headers=headers))
    finally:
        other.close()
    assert other.paths == []
    assert idp.paths == [DISCOVERY_PATH, JWKS_PATH, DISCOVERY_PATH, JWKS_PATH]


async def test_cached_keys_keep_serving_while_the_provider_is_down(idp: IdPServer, keys: Keys) -> None:
    """Both documents answer 503 after start-up: a refresh fails (counted, logged), tokens signed with the
    cached key still verify and the issuer reports `stale`."""
    metrics = Metrics()
    async with discovering(idp.issuer, metrics, jwks_cache_ttl=Duration(0)) as verifier:
        idp.down = {DISCOVERY_PATH, JWKS_PATH}
        with capture_logs() as logs:
            await verifier._issuers[idp.issuer].jwks.refresh()  # type: ignore[union-attr]  # a discovery issuer
        caller = await verifier.verify(token(keys, idp.issuer))
        status = verifier.jwks_status()
    assert (caller.subject, status) == ("alice", "stale")
    assert [e["reason"] for e in logs if e["event"] == "oidc_discovery_failed"] == ["http_5xx"]
    assert metrics.registry.get_sample_value("livetoken_jwks_refreshes_total", {"outcome": "error"}) == 2.0


async def test_advertised_algorithms_narrow_nothing(idp: IdPServer, keys: Keys) -> None:
    """A document advertising only ES256 while the config allows RS256: RS256 tokens still verify (the config
    decides), and the mismatch is logged for the operator."""
    idp.document["id_token_signing_alg_values_supported"] = ["ES256"]
    with capture_logs() as logs:
        async with discovering(idp.issuer, Metrics()) as verifier:
            caller = await verifier.verify(token(keys, idp.issuer))
    assert caller.subject == "alice"
    assert [e["advertised"] for e in logs if e["event"] == "oidc_algorithms_disjoint"] == [["ES256"]]


@pytest.mark.parametrize(
    ("issuer", "problem"),
    [
        ("http://idp.example.com", "plain http only on a loopback address"),
        ("idp.example.com", "must be an http:// or https:// URL"),
        ("https://idp.example.com?tenant=1", "must not have a query string"),
    ],
)
def test_discovery_needs_an_https_issuer(issuer: str, problem: str) -> None:
    cfg = IssuerConfig(issuer=issuer, audiences=[AUD], algorithms=["RS256"], discovery=True)
    with pytest.raises(ConfigError) as refused:
        check_rules(_file([cfg]))
    assert str(refused.value).startswith(f"issuers[0].issuer: discovery needs the issuer as an https URL ({problem}")


def test_discovery_is_one_key_source_among_the_others() -> None:
    cfg = IssuerConfig(
        issuer="https://idp.example.com", audiences=[AUD], algorithms=["RS256"], discovery=True, jwks_url="https://x/"
    )
    with pytest.raises(ConfigError) as refused:
        check_rules(_file([cfg]))
    assert str(refused.value) == (
        "issuers[0]: set exactly one key source of discovery, jwks_url, public_key_file, hs256_secret_env "
        "(found 2: discovery, jwks_url)"
    )


def _file(issuers: list[IssuerConfig]) -> Any:
    from service.config.model import FileConfig, ProfileConfig

    return FileConfig(issuers=issuers, profiles={"voice": ProfileConfig(model="gemini-3.8-live")})


@pytest.mark.parametrize(
    ("issuer", "jwks_uri", "allowed"),
    [
        ("https://idp.example.com", "https://keys.example.com/jwks", True),
        ("https://idp.example.com", "http://127.0.0.1:6379/", False),  # a public issuer sending us to a local port
        ("https://idp.example.com", "http://localhost/jwks", False),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000/jwks", True),  # a provider on this host, as in the tests
        ("http://127.0.0.1:9000", "http://keys.example.com/jwks", False),
    ],
)
def test_plain_http_keys_only_from_a_provider_on_this_host(issuer: str, jwks_uri: str, allowed: bool) -> None:
    document = json.dumps({"issuer": issuer, "jwks_uri": jwks_uri}).encode()
    if allowed:
        assert parse_discovery(document, issuer, frozenset({"RS256"})).jwks_uri == jwks_uri
    else:
        with pytest.raises(JWKSRejected) as refused:
            parse_discovery(document, issuer, frozenset({"RS256"}))
        assert refused.value.reason == "jwks_uri_not_https"
