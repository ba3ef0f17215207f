"""The egress proxy, with a real forward proxy (proxy.py): mints (CONNECT, TLS to Google inside the tunnel) and JWKS
fetches go through it with its credentials, NO_PROXY hosts go direct, a refusing or absent proxy is a clean 503, and
the credentials are never logged."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.auth.signing import public_jwk
from tests.support.forward_proxy import ForwardProxy
from tests.support.jwks_server import JWKSServer
from tests.support.processes import livetoken_exe, serving
from tests.support.redis_proc import free_port
from tests.support.service import auth, service_env, write_config

pytestmark = pytest.mark.slow

IDP = "https://idp.proxied.test/"
PASSWORD = "pr0xy-s3cret-pass"


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[ForwardProxy]:
    """A forward proxy that wants Basic credentials."""
    server = ForwardProxy(tmp_path, basic_auth=f"egress:{PASSWORD}")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def jwks() -> Iterator[JWKSServer]:
    """An identity provider's JWKS endpoint (plain http, so the proxy sees the GET itself)."""
    server = JWKSServer()
    yield server
    server.close()


def _emulator_target(emulator: Any) -> str:
    parts = urlsplit(emulator.base_url)
    return f"{parts.hostname}:{parts.port}"


def _lines(text: str, event: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{") and f'"{event}"' in line]


def test_mints_and_jwks_go_through_the_proxy_with_its_credentials(
    tmp_path: Path, emulator: Any, redis_url: str, proxy: ForwardProxy, jwks: JWKSServer
) -> None:
    """HTTPS_PROXY/HTTP_PROXY with credentials: the mint is a CONNECT to Google's host through the proxy (TLS inside
    it), the JWKS a GET through it; the caller gets 201; the password shows nowhere in the service's output."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwks.jwks = {"keys": [public_jwk(key.public_key(), "EC", "k1", "ES256")]}
    issuer = f"""
[[issuers]]
issuer = "{IDP}"
audiences = ["livetoken"]
algorithms = ["ES256"]
jwks_url = "{jwks.url}"
"""
    url_with_password = proxy.url(f"egress:{PASSWORD}")
    env = service_env(emulator, redis_url, HTTPS_PROXY=url_with_password, http_proxy=url_with_password, NO_PROXY="")
    now = int(time.time())
    caller = jwt.encode(
        {"iss": IDP, "aud": "livetoken", "sub": "pat", "iat": now, "exp": now + 300},
        key,
        algorithm="ES256",
        headers={"kid": "k1"},
    )
    before = emulator.mint_count()
    with serving(write_config(tmp_path, extra=issuer), env) as (proc, url):
        resp = httpx.post(url + "/v1/tokens", json={"profile": "voice"}, headers=auth(caller), timeout=10)
        output = proc.text
    assert resp.status_code == 201, resp.text
    assert emulator.mint_count() == before + 1
    seen = proxy.access()
    connects = [line for line in seen if line.startswith("CONNECT ")]
    assert connects, seen
    assert set(connects) == {f"CONNECT {_emulator_target(emulator)}"}  # the warm-up's and the mint's tunnels
    assert f"GET 127.0.0.1:{urlsplit(jwks.url).port}/jwks.json" in seen
    assert jwks.hits >= 1
    [route] = _lines(output, "egress_proxy")
    proxy_shown = f"http://127.0.0.1:{proxy.port}"
    assert route["route"] == f"https={proxy_shown} http={proxy_shown}"
    assert PASSWORD not in output


def test_no_proxy_hosts_go_direct(tmp_path: Path, emulator: Any, redis_url: str, proxy: ForwardProxy) -> None:
    """NO_PROXY naming Google's host (here the emulator's): the mint goes direct, the proxy sees nothing."""
    env = service_env(emulator, redis_url, HTTPS_PROXY=proxy.url(f"egress:{PASSWORD}"), NO_PROXY="localhost,127.0.0.1")
    with serving(write_config(tmp_path), env) as (_proc, url):
        resp = httpx.post(url + "/v1/tokens", json={"profile": "voice"}, headers=auth(), timeout=10)
    assert resp.status_code == 201, resp.text
    assert proxy.access() == []


@pytest.mark.parametrize("problem", ["refused", "down"])
def test_a_refusing_or_absent_proxy_is_a_clean_503(
    tmp_path: Path, emulator: Any, redis_url: str, proxy: ForwardProxy, problem: str
) -> None:
    """Wrong credentials (the proxy answers 407) or no proxy listening: 503 upstream-unavailable, nothing minted,
    and a log line that names the proxy and what went wrong (never the credentials)."""
    if problem == "refused":
        proxy_url = proxy.url(f"egress:not-{PASSWORD}")
        event, port = "egress_proxy_refused", proxy.port
    else:
        port = free_port()
        proxy_url = f"http://egress:{PASSWORD}@127.0.0.1:{port}"
        event = "egress_proxy_unreachable"
    env = service_env(emulator, redis_url, HTTPS_PROXY=proxy_url)
    before = emulator.mint_count()
    with serving(write_config(tmp_path), env) as (proc, url):
        resp = httpx.post(url + "/v1/tokens", json={"profile": "voice"}, headers=auth(), timeout=20)
        output = proc.text
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["type"].endswith("/upstream-unavailable")
    assert int(resp.headers["retry-after"]) >= 1
    assert emulator.mint_count() == before
    lines = _lines(output, event)
    assert lines, output
    assert {(line["proxy"], line["target"]) for line in lines} == {
        (f"http://127.0.0.1:{port}", _emulator_target(emulator))
    }
    if problem == "refused":
        assert {line["status"] for line in lines} == {407}
    assert PASSWORD not in output
    assert PASSWORD not in resp.text


@pytest.mark.parametrize(
    ("value", "line"),
    [
        pytest.param(
            "socks5://egress:pw@127.0.0.1:1080",
            "HTTPS_PROXY: only http:// proxies are supported (the connection to the origin is a CONNECT tunnel, so "
            "TLS to Google stays end to end), not socks5://",
            id="socks",
        ),
        pytest.param(
            "http://egress:pw@127.0.0.1:99999",
            "HTTPS_PROXY: not a proxy URL such as http://proxy.internal:3128",
            id="bad-port",
        ),
    ],
)
def test_a_bad_proxy_variable_is_one_line_without_its_credentials(tmp_path: Path, value: str, line: str) -> None:
    """check-config and serve (the real CLI, with the variable in its environment only) refuse it alike, exit 2,
    and never echo the credentials."""
    config = write_config(tmp_path)
    env = {
        **os.environ,
        "TEST_ISSUER_SECRET": "s" * 40,
        "LIVETOKEN_GEMINI_API_KEY": "k",
        "HTTPS_PROXY": value,
        "https_proxy": "",
    }
    results = [
        subprocess.run(
            [livetoken_exe(), *args, str(config)], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        for args in (["check-config"], ["serve", "--config"])
    ]
    assert [(r.returncode, r.stderr) for r in results] == [(2, f"livetoken: configuration error: {line}\n")] * 2
    assert all("pw@" not in r.stderr + r.stdout for r in results)
