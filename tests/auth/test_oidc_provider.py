"""livetoken configured by discovery alone against a real OpenID provider: panva's oidc-provider (OpenID
Certified), started by the tests (tests/support/oidc_provider.py), issuing real tokens — client-credentials access
tokens as JWT (`at+jwt`, RFC 9068) and ID tokens through a scripted login.

Each test runs the real app (settings from a TOML file, its lifespan, Redis, the emulator as Google) and asks for
a token over HTTP, as a frontend would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.oidc_provider import OTHER_RESOURCE, OIDCProvider
from tests.support.service import build_settings, running_app, service_env, write_config

COOLDOWN = 1.0


@pytest.fixture(scope="module")
def provider() -> Iterator[OIDCProvider]:
    with OIDCProvider() as idp:
        yield idp


def discovery_issuer(idp: OIDCProvider, **rules: str) -> str:
    """An [[issuers]] block naming the provider by its URL alone, with `rules` (TOML values) added."""
    lines = [
        "[[issuers]]",
        f'issuer = "{idp.issuer}"',
        'algorithms = ["RS256"]',
        "discovery = true",
        f'jwks_refresh_cooldown = "{COOLDOWN:g}s"',
        'jwks_timeout = "1s"',
        *(f"{key} = {value}" for key, value in rules.items()),
    ]
    return "\n" + "\n".join(lines) + "\n"


def settings_for(tmp_path: Path, emulator: Any, redis_url: str, block: str) -> Any:
    return build_settings(write_config(tmp_path, extra=block), service_env(emulator, redis_url))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_access_tokens_verify_by_discovery_and_another_client_or_issuer_is_refused(
    tmp_path: Path, provider: OIDCProvider, emulator: Any, redis_url: str
) -> None:
    """A client-credentials access token for the livetoken resource gets a token; the same provider's token for
    another client (require_claims client_id), for another resource (aud), and another provider's token are 401.
    livetoken fetched the discovery document and its jwks_uri, nothing else."""
    block = discovery_issuer(provider, audiences='["livetoken"]', require_claims='{ client_id = "livetoken-test" }')
    with OIDCProvider() as stranger:
        foreign = stranger.client_credentials_token()
        async with running_app(settings_for(tmp_path, emulator, redis_url, block)) as client:
            good = await client.post(
                "/v1/tokens", json={"profile": "voice"}, headers=bearer(provider.client_credentials_token())
            )
            refused = {
                "other client": provider.client_credentials_token(client_id="other-client"),
                "other resource": provider.client_credentials_token(scope="other:read", resource=OTHER_RESOURCE),
                "other provider": foreign,
            }
            answers = {
                case: await client.post("/v1/tokens", json={"profile": "voice"}, headers=bearer(token))
                for case, token in refused.items()
            }
            ready = (await client.get("/readyz")).json()
    assert good.status_code == 201, good.text
    assert good.json()["token"].startswith("auth_tokens/")
    for case, answer in answers.items():
        assert answer.status_code == 401, case
        assert answer.headers["www-authenticate"] == 'Bearer realm="livetoken", error="invalid_token"', case
        assert answer.json()["type"] == "https://livetoken.dev/problems/invalid-token", case
    assert ready["jwks"] == "ok"


async def test_id_tokens_from_a_scripted_login_verify(
    tmp_path: Path, provider: OIDCProvider, emulator: Any, redis_url: str
) -> None:
    """An ID token (aud = the client id) for alice gets a token; another client's ID token is 401."""
    block = discovery_issuer(provider, audiences='["livetoken-test"]')
    async with running_app(settings_for(tmp_path, emulator, redis_url, block)) as client:
        mine = await client.post("/v1/tokens", json={"profile": "voice"}, headers=bearer(provider.id_token()))
        theirs = await client.post(
            "/v1/tokens", json={"profile": "voice"}, headers=bearer(provider.id_token(client_id="other-client"))
        )
    assert mine.status_code == 201, mine.text
    assert theirs.status_code == 401


async def test_a_key_rotation_at_the_provider_is_followed_within_the_cooldown(
    tmp_path: Path, provider: OIDCProvider, emulator: Any, redis_url: str
) -> None:
    """The provider rotates to a new kid: a token signed with it is accepted at the latest one cooldown (1 s)
    after the first attempt (an unknown kid refetches the discovery document and the keys)."""
    block = discovery_issuer(provider, audiences='["livetoken"]')
    async with running_app(settings_for(tmp_path, emulator, redis_url, block)) as client:
        assert (
            await client.get("/v1/profiles", headers=bearer(provider.client_credentials_token()))
        ).status_code == 200
        new_kid = provider.rotate_keys()
        token = provider.client_credentials_token()
        started = time.monotonic()
        while True:
            status = (await client.get("/v1/profiles", headers=bearer(token))).status_code
            if status == 200 or time.monotonic() - started > COOLDOWN + 2:
                break
            await _pause()
        took = time.monotonic() - started
    assert status == 200
    assert took <= COOLDOWN + 0.5, took
    assert provider.kid == new_kid


async def test_cached_keys_keep_serving_while_the_provider_is_down(
    tmp_path: Path, provider: OIDCProvider, emulator: Any, redis_url: str
) -> None:
    """The provider stops after start-up (its keys were cached, their TTL 1 s): a token livetoken never saw before,
    signed with the cached key, still gets a livetoken token; /readyz stays ready and says `stale`."""
    block = discovery_issuer(provider, audiences='["livetoken"]', jwks_cache_ttl='"1s"', jwks_max_stale='"1h"')
    token = provider.client_credentials_token()
    async with running_app(settings_for(tmp_path, emulator, redis_url, block)) as client:
        provider.stop()
        try:
            await _pause(COOLDOWN + 0.2)  # past the TTL and the cooldown: the next request tries a refresh
            first = await client.post("/v1/tokens", json={"profile": "voice"}, headers=bearer(token))
            await _pause(0.3)  # the background refresh has failed by now
            ready = await client.get("/readyz")
        finally:
            provider.restart()
    assert first.status_code == 201, first.text
    assert ready.status_code == 200
    assert ready.json()["jwks"] == "stale"


async def _pause(seconds: float = 0.05) -> None:
    await asyncio.sleep(seconds)
