"""The identity-provider recipes (docs/identity-providers.md), each loaded from the page itself and shown to verify
a token shaped exactly like that provider's (header, claims, key type) — and to refuse the near miss a careless
config would let through (an ID token where an access token belongs, another origin, another client, the anonymous
role).

The provider's keys are a local key published as that provider's JWKS; the recipe's key source (`discovery` or
the provider's `jwks_url`) is pointed at it. Discovery itself against a real OpenID provider:
tests/auth/test_oidc_provider.py.
"""

from __future__ import annotations

import re
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from service.auth import JWTVerifier
from service.config import IssuerConfig
from service.config.loading import parse_file_config
from service.errors import InvalidToken
from service.metrics import Metrics
from tests.auth.signing import Keys, public_jwk
from tests.support.jwks_server import JWKSServer

README = Path(__file__).resolve().parents[2] / "docs" / "identity-providers.md"
_RECIPE = re.compile(r"<!-- recipe: (\w+) -->\n```toml\n(.*?)```", re.DOTALL)
PROFILE = {"voice": {"model": "gemini-3.8-live"}}


def recipes() -> dict[str, dict[str, Any]]:
    """Each recipe's `[[issuers]]` block, as the page prints it."""
    return {name: tomllib.loads(body)["issuers"][0] for name, body in _RECIPE.findall(README.read_text())}


def test_the_readme_has_a_valid_recipe_per_provider() -> None:
    """Seven providers, each block a valid configuration as printed (its real URLs, its own key source)."""
    found = recipes()
    assert sorted(found) == ["auth0", "clerk", "cognito", "entra", "firebase", "keycloak", "supabase"]
    for name, block in found.items():
        cfg = parse_file_config({"issuers": [block], "profiles": PROFILE}).issuers[0]
        assert cfg.issuer.startswith("https://"), name


@dataclass
class Shape:
    """A provider's token: how it is signed, its header and claims, who it names, and a near miss."""

    key: str  # "rsa" or "ec"
    header: dict[str, Any]
    claims: Callable[[str, int], dict[str, Any]]  # (issuer, now) -> claims
    subject: str
    tenant: str | None
    scopes: frozenset[str]
    near_miss: dict[str, Any]  # claims changed (None deletes one): a token the recipe must refuse


SHAPES: dict[str, Shape] = {
    "firebase": Shape(
        "rsa",
        {"typ": "JWT"},
        lambda iss, now: {
            "iss": iss,
            "aud": "my-project",
            "auth_time": now - 60,
            "user_id": "kX3v9QpL2mUbt8YfZ1",
            "sub": "kX3v9QpL2mUbt8YfZ1",
            "iat": now,
            "exp": now + 3600,
            "email": "ada@example.com",
            "email_verified": True,
            "plan": "pro",
            "firebase": {"identities": {"email": ["ada@example.com"]}, "sign_in_provider": "password", "tenant": "t-1"},
        },
        "kX3v9QpL2mUbt8YfZ1",
        "t-1",
        frozenset(),
        {"aud": "another-project"},
    ),
    "auth0": Shape(
        "rsa",
        {"typ": "JWT"},
        lambda iss, now: {
            "iss": iss,
            "sub": "auth0|64f1c2a9b3e8d1",
            "aud": ["https://livetoken.example.com", "https://my-tenant.eu.auth0.com/userinfo"],
            "iat": now,
            "exp": now + 86400,
            "scope": "openid profile email",
            "azp": "Zq3nF8kT2pW9xYvB",
            "org_id": "org_9aBcD",
            "permissions": ["live:voice", "live:video"],
        },
        "auth0|64f1c2a9b3e8d1",
        "org_9aBcD",
        frozenset({"live:voice", "live:video"}),
        {"aud": ["https://other-api.example.com"]},
    ),
    "cognito": Shape(
        "rsa",
        {},
        lambda iss, now: {
            "sub": "0f9e8d7c-6b5a-4f3e-2d1c-0b9a8f7e6d5c",
            "cognito:groups": ["voice"],
            "iss": iss,
            "version": 2,
            "client_id": "4tqlb3nk8k0e2mdv5k0example",
            "origin_jti": "a1b2c3d4-0000-1111-2222-333344445555",
            "event_id": "e5f6a7b8-0000-1111-2222-333344445555",
            "token_use": "access",
            "scope": "aws.cognito.signin.user.admin live/voice",
            "auth_time": now - 60,
            "exp": now + 3600,
            "iat": now,
            "jti": "c9d8e7f6-0000-1111-2222-333344445555",
            "username": "ada",
        },
        "0f9e8d7c-6b5a-4f3e-2d1c-0b9a8f7e6d5c",
        None,
        frozenset({"aws.cognito.signin.user.admin", "live/voice"}),
        # Cognito's ID token: aud = the client id, token_use = id, no client_id.
        {"token_use": "id", "client_id": None, "aud": "4tqlb3nk8k0e2mdv5k0example"},
    ),
    "clerk": Shape(
        "rsa",
        {"typ": "JWT"},
        lambda iss, now: {
            "azp": "https://app.example.com",
            "exp": now + 60,
            "fva": [3, -1],
            "iat": now,
            "iss": iss,
            "nbf": now - 10,
            "sid": "sess_2abcDEFghiJKLmnoPQR",
            "sub": "user_2abcDEFghiJKLmnoPQR",
            "v": 2,
            "o": {"id": "org_2xyz", "rol": "admin", "slg": "acme"},
        },
        "user_2abcDEFghiJKLmnoPQR",
        "org_2xyz",
        frozenset(),
        {"azp": "https://evil.example.com"},
    ),
    "supabase": Shape(
        "ec",
        {"typ": "JWT"},
        lambda iss, now: {
            "iss": iss,
            "sub": "123e4567-e89b-12d3-a456-426614174000",
            "aud": "authenticated",
            "exp": now + 3600,
            "iat": now,
            "email": "ada@example.com",
            "phone": "",
            "app_metadata": {"provider": "email", "providers": ["email"], "org": "acme"},
            "user_metadata": {},
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": now - 60}],
            "session_id": "8f1a2b3c-0000-1111-2222-333344445555",
            "is_anonymous": False,
        },
        "123e4567-e89b-12d3-a456-426614174000",
        "acme",
        frozenset(),
        {"is_anonymous": True},  # an anonymous sign-in: role is "authenticated" all the same
    ),
    "keycloak": Shape(
        "rsa",
        {"typ": "JWT"},
        lambda iss, now: {
            "exp": now + 300,
            "iat": now,
            "auth_time": now - 30,
            "jti": "onrtac:5f0e7c1d-0000-1111-2222-333344445555",
            "iss": iss,
            "aud": ["livetoken", "account"],
            "sub": "7c1d5f0e-0000-1111-2222-333344445555",
            "typ": "Bearer",
            "azp": "voice-web",
            "sid": "2b3c8f1a-0000-1111-2222-333344445555",
            "acr": "1",
            "allowed-origins": ["https://app.example.com"],
            "realm_access": {"roles": ["default-roles-myrealm", "live-voice"]},
            "resource_access": {"account": {"roles": ["manage-account"]}},
            "scope": "openid profile email",
            "preferred_username": "ada",
        },
        "7c1d5f0e-0000-1111-2222-333344445555",
        None,
        frozenset({"default-roles-myrealm", "live-voice"}),
        {"azp": "admin-cli"},
    ),
    "entra": Shape(
        "rsa",
        {"typ": "JWT", "x5t": "nOo3ZDrODXEK1jKWhXslHR_KXEg"},
        lambda iss, now: {
            "aud": "55555555-6666-7777-8888-999999999999",
            "iss": iss,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "aio": "AXQAi/8TAAAA",
            "azp": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            "azpacr": "0",
            "name": "Ada Lovelace",
            "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
            "preferred_username": "ada@contoso.example",
            "rh": "0.AXQA",
            "scp": "Live.Voice Live.Video",
            "sub": "mnXvVfbFPgFsnqnMMuHUeBLcDWwmsBcYnhHpVvLFqjA",
            "tid": "00000000-1111-2222-3333-444444444444",
            "uti": "fqiBqXLPj0eQa82S-IYFAA",
            "ver": "2.0",
        },
        "mnXvVfbFPgFsnqnMMuHUeBLcDWwmsBcYnhHpVvLFqjA",
        "00000000-1111-2222-3333-444444444444",
        frozenset({"Live.Voice", "Live.Video"}),
        # Another tenant's token for the same app: its own iss, which no block names.
        {"iss": "https://login.microsoftonline.com/99999999-1111-2222-3333-444444444444/v2.0"},
    ),
}


@asynccontextmanager
async def verifier_for(block: dict[str, Any], jwks_url: str) -> AsyncIterator[JWTVerifier]:
    """The recipe's issuer with its key source pointed at the local JWKS (everything else as printed)."""
    local = {k: v for k, v in block.items() if k not in ("discovery", "jwks_url")} | {"jwks_url": jwks_url}
    cfg: IssuerConfig = parse_file_config({"issuers": [local], "profiles": PROFILE}).issuers[0]
    async with httpx.AsyncClient() as http:
        verifier = JWTVerifier([cfg], {}, http, Metrics())
        await verifier.start()
        yield verifier


def sign(keys: Keys, shape: Shape, claims: dict[str, Any]) -> str:
    key, alg = (keys.rsa, "RS256") if shape.key == "rsa" else (keys.ec, "ES256")
    return "Bearer " + jwt.encode(claims, key, algorithm=alg, headers={"kid": "provider-1", **shape.header})


@pytest.mark.parametrize("provider", sorted(SHAPES))
async def test_a_token_shaped_like_the_providers_verifies_and_its_near_miss_does_not(provider: str, keys: Keys) -> None:
    shape = SHAPES[provider]
    block = recipes()[provider]
    server = JWKSServer()
    public, kty, alg = (
        (keys.rsa.public_key(), "RSA", "RS256") if shape.key == "rsa" else (keys.ec.public_key(), "EC", "ES256")
    )
    server.jwks = {"keys": [public_jwk(public, kty, "provider-1", alg)]}
    claims = shape.claims(block["issuer"], int(time.time()))
    near = {k: v for k, v in (claims | shape.near_miss).items() if v is not None}
    try:
        async with verifier_for(block, server.url) as verifier:
            caller = await verifier.verify(sign(keys, shape, claims))
            with pytest.raises(InvalidToken) as refused:
                await verifier.verify(sign(keys, shape, near))
    finally:
        server.close()
    assert (caller.issuer, caller.subject, caller.tenant, caller.scopes) == (
        block["issuer"],
        shape.subject,
        shape.tenant,
        shape.scopes,
    )
    assert refused.value.status == 401
    assert refused.value.headers() == {"WWW-Authenticate": 'Bearer realm="livetoken", error="invalid_token"'}
