"""Firebase App Check (`X-Firebase-AppCheck`), per profile: `require_app_check` asks signed-in callers for it too;
`anonymous` lets callers in on App Check alone (a landing-page voice demo), limited per app.

App Check tokens here are shaped as Firebase issues them (RS256, `typ` JWT, a kid from App Check's JWKS,
`iss` https://firebaseappcheck.googleapis.com/<project number>, `aud` [projects/<number>, projects/<id>], `sub` the
app id), signed by a local key published as App Check's JWKS (`[app_check] jwks_url`).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from litestar.testing import AsyncTestClient

from tests.auth.signing import Keys, public_jwk
from tests.support.jwks_server import JWKSServer
from tests.support.service import auth, build_settings, running_app, service_env, write_config

NUMBER = "123456789012"
WEB_APP = "1:123456789012:web:0a1b2c3d4e5f"
OTHER_APP = "1:123456789012:android:9f8e7d6c"
APP_CHECK_CHALLENGE = 'AppCheck realm="livetoken"'
PROBLEM = "https://livetoken.dev/problems/app-check-invalid"
LIMITS = 'subject = [{ rate = 100, period = "1m", burst = 100 }]\nanonymous = [{ rate = 2, period = "1h", burst = 2 }]'


def extra(jwks_url: str) -> str:
    return f"""
[profiles.demo]
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
require_app_check = true
anonymous = true

[profiles.members]
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
require_app_check = true

[server]
cors_allow_origins = ["https://app.example"]

[app_check]
project_number = "{NUMBER}"
app_ids = ["{WEB_APP}", "{OTHER_APP}"]
jwks_url = "{jwks_url}"
"""


@pytest.fixture
def app_check_jwks(keys: Keys) -> Iterator[JWKSServer]:
    server = JWKSServer()
    server.jwks = {"keys": [public_jwk(keys.rsa.public_key(), "RSA", "appcheck-1", "RS256")]}
    yield server
    server.close()


@pytest.fixture
async def client(
    tmp_path: Path, app_check_jwks: JWKSServer, emulator: Any, redis_url: str
) -> AsyncIterator[AsyncTestClient[Any]]:
    config = write_config(tmp_path, LIMITS, extra=extra(app_check_jwks.url))
    async with running_app(build_settings(config, service_env(emulator, redis_url))) as test_client:
        yield test_client


def app_check(keys: Keys, key: Any = None, headers: dict[str, Any] | None = None, **over: Any) -> str:
    """An App Check token as Firebase issues one (claims overridable; None deletes one)."""
    now = int(time.time())
    claims = {
        "sub": WEB_APP,
        "aud": [f"projects/{NUMBER}", "projects/my-project"],
        "provider": "recaptcha_enterprise",
        "iss": f"https://firebaseappcheck.googleapis.com/{NUMBER}",
        "exp": now + 3600,
        "iat": now,
        "jti": "6sBq0Xz2rTyQ",
    }
    claims = {k: v for k, v in (claims | over).items() if v is not None}
    head = {"kid": "appcheck-1", "typ": "JWT", **(headers or {})}
    return jwt.encode(claims, key or keys.rsa, algorithm="RS256", headers=head)


def post(client: AsyncTestClient[Any], profile: str, headers: dict[str, str]) -> Any:
    return client.post("/v1/tokens", json={"profile": profile}, headers=headers)


async def test_an_anonymous_profile_serves_app_check_alone_limited_per_app(
    client: AsyncTestClient[Any], keys: Keys, emulator: Any
) -> None:
    """No user JWT, a valid App Check token: 201 for the anonymous profile, twice (limits.anonymous: 2 per
    hour for this app), then 429 rate-limited; another app of the project has its own allowance."""
    before = emulator.mint_count()
    web = {"X-Firebase-AppCheck": app_check(keys)}
    answers = [await post(client, "demo", web) for _ in range(3)]
    other = await post(client, "demo", {"X-Firebase-AppCheck": app_check(keys, sub=OTHER_APP)})
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert answers[2].json()["type"] == "https://livetoken.dev/problems/rate-limited"
    assert answers[2].headers["ratelimit-policy"].startswith('"anonymous-')
    assert other.status_code == 201
    assert emulator.mint_count() - before == 3
    metrics = (await client.get("/metrics")).text
    assert 'livetoken_rate_limited_total{layer="anonymous"} 1.0' in metrics


async def test_app_check_alone_does_not_open_a_profile_for_signed_in_users(
    client: AsyncTestClient[Any], keys: Keys
) -> None:
    """The members profile wants a user and App Check: App Check alone is the generic 401 invalid-token."""
    resp = await post(client, "members", {"X-Firebase-AppCheck": app_check(keys)})
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Bearer realm="livetoken", error="invalid_token"'


async def test_a_signed_in_user_still_needs_app_check_where_the_profile_requires_it(
    client: AsyncTestClient[Any], keys: Keys
) -> None:
    """A valid user JWT without App Check: 401 app-check-invalid (its own problem type and challenge); with it,
    201; a profile without require_app_check never asks."""
    without = await post(client, "members", auth(sub="ada"))
    with_it = await post(client, "members", {**auth(sub="ada"), "X-Firebase-AppCheck": app_check(keys)})
    plain = await post(client, "voice", auth(sub="ada"))
    assert without.status_code == 401
    assert without.headers["www-authenticate"] == APP_CHECK_CHALLENGE
    assert without.headers["cache-control"] == "no-store"
    assert without.json() == {
        "type": PROBLEM,
        "title": "App Check token missing or invalid",
        "status": 401,
        "detail": "This profile needs a valid Firebase App Check token in X-Firebase-AppCheck.",
        "request_id": without.json()["request_id"],
    }
    assert with_it.status_code == 201, with_it.text
    assert plain.status_code == 201


BAD: dict[str, dict[str, Any]] = {
    "other project": {"iss": "https://firebaseappcheck.googleapis.com/999", "aud": ["projects/999"]},
    "audience not a list": {"aud": f"projects/{NUMBER}"},
    "audience without the project": {"aud": ["projects/my-project"]},
    "expired": {"exp": int(time.time()) - 3600},
    "app not allowed": {"sub": "1:123456789012:ios:ffff"},
    "no app": {"sub": None},
}


@pytest.mark.parametrize("case", sorted(BAD))
async def test_every_bad_app_check_token_is_the_same_401(client: AsyncTestClient[Any], keys: Keys, case: str) -> None:
    """Each refusal is byte for byte the one for a missing token (nothing says which check failed), for the
    anonymous profile and for a signed-in caller alike."""
    reference = await post(client, "members", {**auth(sub="ada"), "X-Request-ID": "r"})
    bad = {"X-Firebase-AppCheck": app_check(keys, **BAD[case]), "X-Request-ID": "r"}
    signed_in = await post(client, "members", {**auth(sub="ada"), **bad})
    anonymous = await post(client, "demo", bad)
    for resp in (signed_in, anonymous):
        assert (resp.status_code, resp.headers["www-authenticate"], resp.content) == (
            401,
            APP_CHECK_CHALLENGE,
            reference.content,
        )


async def test_a_token_signed_otherwise_is_refused(client: AsyncTestClient[Any], keys: Keys) -> None:
    """Another RSA key under App Check's kid, an HS256 token, a token with another typ: all 401 app-check."""
    forged = [
        app_check(keys, key=keys.rsa_other),
        jwt.encode({"sub": WEB_APP}, "x" * 32, algorithm="HS256", headers={"kid": "appcheck-1", "typ": "JWT"}),
        app_check(keys, headers={"typ": "at+jwt"}),
        "not-a-jwt",
    ]
    for token in forged:
        resp = await post(client, "demo", {"X-Firebase-AppCheck": token})
        assert resp.status_code == 401
        assert json.loads(resp.content)["type"] == PROBLEM
    metrics = (await client.get("/metrics")).text
    checks = {
        line.split('check="')[1].split('"')[0]
        for line in metrics.splitlines()
        if line.startswith("livetoken_app_check_rejections_total{")
    }
    assert checks == {"bad_signature", "algorithm", "typ", "malformed"}


async def test_browsers_may_send_the_app_check_header(client: AsyncTestClient[Any]) -> None:
    """CORS: a preflight asking for X-Firebase-AppCheck from an allowed origin is allowed."""
    resp = await client.options(
        "/v1/tokens",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-firebase-appcheck",
        },
    )
    assert resp.status_code == 204, resp.text
    assert "x-firebase-appcheck" in resp.headers["access-control-allow-headers"]


async def test_anonymous_devices_of_one_app_never_share_an_idempotency_key(
    client: AsyncTestClient[Any], keys: Keys, emulator: Any
) -> None:
    """Two devices of the same app (each its own App Check token) send the same Idempotency-Key: each gets its own
    token, minted once each; a device's retry replays its own."""
    before = emulator.mint_count()
    device_a = {"X-Firebase-AppCheck": app_check(keys, jti="device-a"), "Idempotency-Key": "req-1"}
    device_b = {"X-Firebase-AppCheck": app_check(keys, jti="device-b"), "Idempotency-Key": "req-1"}
    a = await post(client, "demo", device_a)
    b = await post(client, "demo", device_b)
    a_again = await post(client, "demo", device_a)
    assert [r.status_code for r in (a, b, a_again)] == [201, 201, 201]
    assert a.json()["token"] != b.json()["token"]
    assert a_again.json()["token"] == a.json()["token"]
    assert a_again.headers["idempotent-replayed"] == "true"
    assert emulator.mint_count() - before == 2


async def test_readiness_counts_app_checks_keys(
    tmp_path: Path, app_check_jwks: JWKSServer, emulator: Any, redis_url: str
) -> None:
    """With App Check's key endpoint down from the start, /readyz says not ready (jwks unavailable): App Check
    profiles could not serve anyone."""
    app_check_jwks.mode = "down"
    config = write_config(tmp_path, LIMITS, extra=extra(app_check_jwks.url))
    async with running_app(build_settings(config, service_env(emulator, redis_url))) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert (ready.json()["status"], ready.json()["jwks"]) == ("not_ready", "unavailable")
