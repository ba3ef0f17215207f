"""The hostile-token corpus through HTTP: no 5xx, and one byte-identical 401 whatever check refused the token.

The app is the real one (`create_app` with settings loaded from a config file) with the four test issuers of
tests/auth (HS256 secret, RS256 PEM file, ES256 and EdDSA from a real JWKS endpoint) next to the default one.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from litestar.testing import AsyncTestClient

from tests.auth.corpus import CORPUS
from tests.auth.signing import AUD, HS_SECRET, Keys, sign
from tests.support.jwks_server import JWKSServer
from tests.support.service import build_settings, running_app, service_env, write_config

WWW_AUTHENTICATE = 'Bearer realm="livetoken", error="invalid_token"'
REQUEST_ID = "hostile-corpus"
ROUTES = [pytest.param("POST", "/v1/tokens", id="post-tokens"), pytest.param("GET", "/v1/profiles", id="get-profiles")]
# Authorization values no issuer could have signed: shapes of the header itself.
HEADER_SHAPES: dict[str, bytes | None] = {
    "missing": None,
    "empty": b"",
    "scheme-only": b"Bearer",
    "basic": b"Basic YWxpY2U6c2VjcmV0",
    "utf8-bytes": "Bearer \u2603.\u2603.\u2603".encode(),
    "latin1-bytes": b"Bearer \xe9\xe9.\xe9.\xe9",
    "two-tokens": b"Bearer a.b.c d.e.f",
    "huge": b"Bearer " + b"a" * 20_000,
}


def _issuers_toml(tmp_path: Path, keys: Keys, jwks_url: str) -> str:
    pem = tmp_path / "rs.pem"
    pem.write_bytes(keys.rsa_public_pem)
    common = f'audiences = ["{AUD}"]\nleeway = "30s"\nmax_token_age = "1h"\n'
    jwks = f'jwks_url = "{jwks_url}"\njwks_refresh_cooldown = "30s"\njwks_timeout = "500ms"\n'
    return (
        f'\n[[issuers]]\nissuer = "https://hs.test/"\nalgorithms = ["HS256"]\nhs256_secret_env = "HS"\n{common}'
        f'\n[[issuers]]\nissuer = "https://rs.test/"\nalgorithms = ["RS256"]\npublic_key_file = "{pem}"\n{common}'
        f'\n[[issuers]]\nissuer = "https://es.test/"\nalgorithms = ["ES256"]\n{jwks}{common}'
        f'\n[[issuers]]\nissuer = "https://ed.test/"\nalgorithms = ["EdDSA"]\ntenant_claim = "org"\n{jwks}{common}'
        # The provider-shaped rules (README recipes): audience in client_id, an azp, a claim every token holds.
        f'\n[[issuers]]\nissuer = "https://rules.test/"\nalgorithms = ["ES256"]\n{jwks}'
        'audiences = ["app-client"]\naudience_claim = "client_id"\nauthorized_parties = ["web"]\n'
        'require_claims = { token_use = "access" }\nscopes_claim = "realm_access.roles"\n'
    )


@pytest.fixture
async def client(
    tmp_path: Path, keys: Keys, jwks: JWKSServer, emulator: Any, redis_url: str
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The app with the four test issuers, its lifespan running."""
    config = write_config(tmp_path, extra=_issuers_toml(tmp_path, keys, jwks.url))
    settings = build_settings(config, service_env(emulator, redis_url, HS=HS_SECRET))
    async with running_app(settings) as test_client:
        yield test_client


async def _send(client: AsyncTestClient[Any], method: str, path: str, authorization: bytes | None) -> Any:
    headers: dict[str, Any] = {"X-Request-ID": REQUEST_ID, "Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    if method == "POST":
        return await client.post(path, content=b'{"profile": "voice"}', headers=headers)
    return await client.get(path, headers=headers)


def _answer(resp: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return resp.status_code, sorted(resp.headers.raw), resp.content


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_refusal_is_the_same_401_bytes(
    client: AsyncTestClient[Any], keys: Keys, method: str, path: str
) -> None:
    """Each corpus token and each malformed header shape gets exactly the same answer: status, every header and
    the body (one request id for all), with the documented WWW-Authenticate and no error_description."""
    answers: dict[str, tuple[int, list[tuple[bytes, bytes]], bytes]] = {}
    for case, build in CORPUS.items():
        token = build(keys)
        answers[case] = _answer(await _send(client, method, path, f"Bearer {token}".encode()))
    for case, value in HEADER_SHAPES.items():
        answers[f"header:{case}"] = _answer(await _send(client, method, path, value))
    reference = answers["alg-none"]
    different = {case for case, answer in answers.items() if answer != reference}
    assert different == set()
    status, headers, body = reference
    assert status == 401
    assert headers == [
        (b"cache-control", b"no-store"),
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/problem+json"),
        (b"www-authenticate", WWW_AUTHENTICATE.encode()),  # never an error_description
        (b"x-request-id", REQUEST_ID.encode()),
    ]
    assert json.loads(body) == {
        "status": 401,
        "type": "https://livetoken.dev/problems/invalid-token",
        "title": "Invalid token",
        "detail": "The bearer token is missing or invalid.",
        "request_id": REQUEST_ID,
    }


async def test_the_refusals_came_from_many_different_checks(client: AsyncTestClient[Any], keys: Keys) -> None:
    """The identical answers above hide at least a dozen distinct internal checks, none of them the fail-closed net."""
    for build in CORPUS.values():
        await _send(client, "GET", "/v1/profiles", f"Bearer {build(keys)}".encode())
    metrics = (await client.get("/metrics")).text
    checks = {
        line.split('check="', 1)[1].split('"', 1)[0]
        for line in metrics.splitlines()
        if line.startswith("livetoken_jwt_rejections_total{")
    }
    assert len(checks) >= 12, checks
    assert "unexpected" not in checks


@pytest.mark.parametrize("kind", ["hs", "rs", "es", "ed"])
async def test_good_tokens_of_every_issuer_are_served(client: AsyncTestClient[Any], keys: Keys, kind: str) -> None:
    """The same app accepts a good token from each issuer, so the refusals above are the checks at work."""
    resp = await client.get("/v1/profiles", headers={"Authorization": f"Bearer {sign(keys, kind, org='acme')}"})
    assert resp.status_code == 200, resp.text
    assert {p["name"] for p in resp.json()["profiles"]} >= {"voice", "text"}


def _rules_token(keys: Keys, **over: Any) -> bytes:
    now = int(time.time())
    claims = {"iss": "https://rules.test/", "sub": "ada", "exp": now + 300, "iat": now, "client_id": "app-client"}
    claims |= {"azp": "web", "token_use": "access", "realm_access": {"roles": ["live-voice"]}}
    claims = {k: v for k, v in (claims | over).items() if v is not None}
    return ("Bearer " + jwt.encode(claims, keys.ec, algorithm="ES256", headers={"kid": "es-1"})).encode()


async def test_the_issuer_rules_refuse_with_the_same_401(client: AsyncTestClient[Any], keys: Keys) -> None:
    """audience_claim, authorized_parties and require_claims refusals are the same bytes as every other refusal
    (nothing says which rule); the token that meets them all is served, its roles read from a dotted path."""
    reference = _answer(await _send(client, "POST", "/v1/tokens", b"Bearer x.y.z"))
    near_misses: dict[str, dict[str, Any]] = {
        "audience in aud, not client_id": {"client_id": None, "aud": "app-client"},
        "another client": {"client_id": "other-client"},
        "no azp": {"azp": None},
        "another azp": {"azp": "admin-cli"},
        "an ID token": {"token_use": "id"},
        "token_use missing": {"token_use": None},
    }
    for case, over in near_misses.items():
        assert _answer(await _send(client, "POST", "/v1/tokens", _rules_token(keys, **over))) == reference, case
    good = await client.get("/v1/profiles", headers={"Authorization": _rules_token(keys).decode()})
    assert good.status_code == 200, good.text
    metrics = (await client.get("/metrics")).text
    for check, count in (("audience_or_issuer", 1.0), ("missing_claim", 1.0), ("authorized_party", 2.0)):
        assert f'livetoken_jwt_rejections_total{{check="{check}"}} {count}' in metrics, check
    assert 'livetoken_jwt_rejections_total{check="required_claim"} 2.0' in metrics
