"""POST /v1/tokens answered before the framework's routing and through the framework give the same answers.

With CORS configured, a request carrying an Origin header goes through Litestar (its CORS middleware answers
it) and the same request without one takes the raw ASGI way; apart from the CORS headers and per-request
values, a caller cannot tell them apart.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.service import auth, build_settings, make_jwt, running_app, service_env, write_config

ORIGIN = "https://app.example"
PER_REQUEST = {"x-request-id", "date", "content-length"}


@pytest.fixture
def settings(tmp_path: Path, emulator: Any, redis_url: str) -> Any:
    config = write_config(tmp_path, extra=f'\n[server]\ncors_allow_origins = ["{ORIGIN}"]\n')
    return build_settings(config, service_env(emulator, redis_url))


def _cases() -> list[tuple[str, dict[str, str], bytes]]:
    token = make_jwt(sub="parity")
    json_ct = {"Content-Type": "application/json"}
    return [
        ("issued", {**auth(token), **json_ct}, b'{"profile": "voice"}'),
        ("issued with a voice", {**auth(token), **json_ct}, b'{"profile": "voice", "voice": "Puck"}'),
        ("bad JWT", {"Authorization": "Bearer nope", **json_ct}, b'{"profile": "voice"}'),
        ("no JWT", json_ct, b'{"profile": "voice"}'),
        ("bad JSON", {**auth(token), **json_ct}, b'{"profile":'),
        ("unknown field", {**auth(token), **json_ct}, b'{"profile": "voice", "uses": 9}'),
        ("wrong media type", {**auth(token), "Content-Type": "text/plain"}, b'{"profile": "voice"}'),
        ("too large", {**auth(token), **json_ct}, b'{"profile": "' + b"a" * 20000 + b'"}'),
        ("unknown profile", {**auth(token), **json_ct}, b'{"profile": "nope"}'),
        ("forbidden profile", {**auth(token), **json_ct}, b'{"profile": "tools"}'),
        ("voice not allowed", {**auth(token), **json_ct}, b'{"profile": "voice", "voice": "Zephyr"}'),
        ("bad idempotency key", {**auth(token), **json_ct, "Idempotency-Key": "a b"}, b'{"profile": "voice"}'),
    ]


def _comparable(resp: httpx.Response) -> tuple[int, dict[str, str], dict[str, Any]]:
    headers = {
        k.lower(): v
        for k, v in resp.headers.items()
        if k.lower() not in PER_REQUEST and not k.lower().startswith("access-control-") and k.lower() != "vary"
    }
    if "ratelimit" in headers:  # the second request has one request less left
        headers["ratelimit"] = re.sub(r";r=\d+", ";r=N", headers["ratelimit"])
    body = resp.json()
    for per_request in ("request_id", "token", "expire_time", "new_session_expire_time"):
        body.pop(per_request, None)
    return resp.status_code, headers, body


@pytest.mark.parametrize("case", [c[0] for c in _cases()])
async def test_both_ways_give_the_same_answer(settings: Any, case: str) -> None:
    """Same status, headers and body (per-request values aside); only the browser's request gets CORS headers."""
    _, headers, body = next(c for c in _cases() if c[0] == case)
    async with running_app(settings) as client:
        direct = await client.post("/v1/tokens", content=body, headers=headers)
        framework = await client.post("/v1/tokens", content=body, headers={**headers, "Origin": ORIGIN})
    assert "access-control-allow-origin" not in direct.headers
    assert framework.headers["access-control-allow-origin"] == ORIGIN
    assert direct.headers["x-request-id"] != framework.headers["x-request-id"]
    assert _comparable(direct) == _comparable(framework)


async def test_both_ways_share_the_limit_and_the_idempotency_key(settings: Any) -> None:
    """An Idempotency-Key used one way is replayed the other way: one token, minted once."""
    headers = {**auth(make_jwt(sub="idem")), "Content-Type": "application/json", "Idempotency-Key": "k-1"}
    async with running_app(settings) as client:
        first = await client.post("/v1/tokens", json={"profile": "text"}, headers=headers)
        again = await client.post("/v1/tokens", json={"profile": "text"}, headers={**headers, "Origin": ORIGIN})
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["token"] == first.json()["token"]


async def test_both_ways_refuse_over_the_limit_alike(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """Over the limit, the 429 is the same problem with the same Retry-After and RateLimit headers."""
    config = write_config(
        tmp_path,
        'subject = [{ rate = 1, period = "1h", burst = 1 }]',
        f'\n[server]\ncors_allow_origins = ["{ORIGIN}"]\n',
    )
    headers = {**auth(make_jwt(sub="flood")), "Content-Type": "application/json"}
    async with running_app(build_settings(config, service_env(emulator, redis_url))) as client:
        assert (await client.post("/v1/tokens", json={"profile": "voice"}, headers=headers)).status_code == 201
        direct = await client.post("/v1/tokens", json={"profile": "voice"}, headers=headers)
        framework = await client.post("/v1/tokens", json={"profile": "voice"}, headers={**headers, "Origin": ORIGIN})
    assert direct.status_code == framework.status_code == 429
    assert direct.headers["retry-after"] == framework.headers["retry-after"]
    assert _comparable(direct)[1].keys() == _comparable(framework)[1].keys()
    assert _comparable(direct)[2] == _comparable(framework)[2]


async def test_an_unexpected_failure_is_the_same_generic_500_both_ways(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug deep in the flow becomes a problem+json 500 that names nothing internal, whichever way it came."""

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("internal detail auth_tokens/abcdef123 at /srv/secret.py")

    headers = {**auth(make_jwt(sub="bug")), "Content-Type": "application/json"}
    async with running_app(settings) as client:
        monkeypatch.setattr(client.app.state.runtime.issuer, "issue", broken)
        direct = await client.post("/v1/tokens", json={"profile": "voice"}, headers=headers)
        framework = await client.post("/v1/tokens", json={"profile": "voice"}, headers={**headers, "Origin": ORIGIN})
    for resp in (direct, framework):
        assert resp.status_code == 500
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert "auth_tokens" not in resp.text
        assert "secret" not in resp.text
        assert "RuntimeError" not in resp.text
    assert _comparable(direct) == _comparable(framework)
