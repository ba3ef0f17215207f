"""A JWKS refetch a caller's token caused shows in that caller's trace, under authentication."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service.tracing import Tracing
from tests.auth.signing import public_jwk
from tests.support.jwks_server import JWKSServer
from tests.support.service import build_settings, service_env, write_config
from tests.tracing.conftest import traced_app
from tests.tracing.spans import attrs, children, only

IDP = "https://idp.test/"


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    """A real JWKS endpoint, publishing no key yet."""
    server = JWKSServer()
    yield server
    server.close()


def es256_token(key: ec.EllipticCurvePrivateKey, kid: str) -> str:
    """A caller JWT from the JWKS issuer."""
    now = int(time.time())
    claims = {"iss": IDP, "aud": "livetoken", "sub": "erin", "iat": now, "exp": now + 300}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


async def test_a_jwks_fetch_is_a_client_span_under_authentication(
    tmp_path: Path,
    tracing: Tracing,
    exporter: InMemorySpanExporter,
    emulator: Any,
    redis_url: str,
    jwks_server: JWKSServer,
) -> None:
    """A token signed by a key the service has not seen makes it fetch the JWKS: a GET client span to the IdP,
    child of the request's authentication span, with its URL and status."""
    issuer = f"""
[[issuers]]
issuer = "{IDP}"
audiences = ["livetoken"]
algorithms = ["ES256"]
jwks_url = "{jwks_server.url}"
jwks_refresh_cooldown = "0s"
"""
    settings = build_settings(write_config(tmp_path, extra=issuer), service_env(emulator, redis_url))
    key = ec.generate_private_key(ec.SECP256R1())
    async with traced_app(settings, tracing) as client:
        jwks_server.jwks = {"keys": [public_jwk(key.public_key(), "EC", "rotated-1", "ES256")]}  # the IdP rotates
        exporter.clear()
        resp = await client.post(
            "/v1/tokens",
            json={"profile": "voice"},
            headers={"Authorization": f"Bearer {es256_token(key, 'rotated-1')}"},
        )
    assert resp.status_code == 201
    spans = exporter.get_finished_spans()
    (fetch,) = children(spans, only(spans, "livetoken.authenticate"))
    assert fetch.name == "GET"
    assert fetch.kind is SpanKind.CLIENT
    assert attrs(fetch)["url.full"] == jwks_server.url
    assert attrs(fetch)["http.response.status_code"] == 200
    assert jwks_server.paths == ["/jwks.json", "/jwks.json"]  # start-up, then the caller's refetch
