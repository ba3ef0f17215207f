"""Browser callers: the same route and the same answers with an Origin header as without, preflights answered,
refused origins told so in problem+json, dev mode open to local dev servers.

POST /v1/tokens is one route behind one middleware stack; a browser's request (it always sends Origin) differs
from a server's only by the CORS headers on the answer.
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
async def test_with_and_without_origin_the_same_answer(settings: Any, case: str) -> None:
    """Same status, headers and body (per-request values aside); only the browser's request gets CORS headers."""
    _, headers, body = next(c for c in _cases() if c[0] == case)
    async with running_app(settings) as client:
        direct = await client.post("/v1/tokens", content=body, headers=headers)
        framework = await client.post("/v1/tokens", content=body, headers={**headers, "Origin": ORIGIN})
    assert "access-control-allow-origin" not in direct.headers
    assert framework.headers["access-control-allow-origin"] == ORIGIN
    assert direct.headers["x-request-id"] != framework.headers["x-request-id"]
    assert _comparable(direct) == _comparable(framework)


async def test_with_and_without_origin_share_the_idempotency_key(settings: Any) -> None:
    """An Idempotency-Key used one way is replayed the other way: one token, minted once."""
    headers = {**auth(make_jwt(sub="idem")), "Content-Type": "application/json", "Idempotency-Key": "k-1"}
    async with running_app(settings) as client:
        first = await client.post("/v1/tokens", json={"profile": "text"}, headers=headers)
        again = await client.post("/v1/tokens", json={"profile": "text"}, headers={**headers, "Origin": ORIGIN})
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["token"] == first.json()["token"]


async def test_with_and_without_origin_refuse_over_the_limit_alike(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
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


async def test_an_unexpected_failure_is_the_same_generic_500_with_and_without_origin(
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


PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
}


@pytest.mark.parametrize("path", ["/v1/tokens", "/v1/profiles"])
async def test_a_preflight_from_an_allowed_origin_is_answered(settings: Any, path: str) -> None:
    """204 with exactly the CORS headers a browser needs, for the token route and the framework routes alike."""
    async with running_app(settings) as client:
        resp = await client.options(path, headers=PREFLIGHT)
    assert resp.status_code == 204
    assert resp.content == b""
    assert {k: v for k, v in resp.headers.items() if k != "x-request-id"} == {
        "access-control-allow-origin": ORIGIN,
        "access-control-allow-methods": "GET, POST",
        "access-control-allow-headers": (
            "authorization, content-type, idempotency-key, x-firebase-appcheck, x-request-id"
        ),
        "access-control-max-age": "600",
        "vary": "Origin",
        "cache-control": "no-store",
    }


async def test_a_refused_origin_gets_problem_json_and_is_counted(settings: Any) -> None:
    """A preflight from an origin not configured: 403 problem+json (not the framework's text/plain 400), counted
    as a rejection like every other refusal."""
    async with running_app(settings) as client:
        resp = await client.options("/v1/tokens", headers={**PREFLIGHT, "Origin": "https://evil.example"})
        metrics = (await client.get("/metrics")).text
    assert resp.status_code == 403
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["cache-control"] == "no-store"
    assert "access-control-allow-origin" not in resp.headers
    assert resp.json() == {
        "status": 403,
        "type": "https://livetoken.dev/problems/origin-not-allowed",
        "title": "Origin not allowed",
        "detail": "This origin may not call the service from a browser; ask its operator to add it.",
        "request_id": resp.headers["x-request-id"],
    }
    assert 'livetoken_rejections_total{reason="origin-not-allowed"} 1.0' in metrics


async def test_a_preflight_for_a_method_or_header_the_api_does_not_take_is_refused(settings: Any) -> None:
    """An allowed origin asking for DELETE, or for a header the API ignores, gets a 400 problem naming what is
    accepted."""
    async with running_app(settings) as client:
        method = await client.options("/v1/tokens", headers={**PREFLIGHT, "Access-Control-Request-Method": "DELETE"})
        header = await client.options("/v1/tokens", headers={**PREFLIGHT, "Access-Control-Request-Headers": "x-admin"})
    for resp in (method, header):
        assert resp.status_code == 400
        assert resp.json()["detail"] == (
            "A browser may call this API with GET, POST and the headers "
            "authorization, content-type, idempotency-key, x-firebase-appcheck, x-request-id only."
        )


async def test_a_token_request_from_a_refused_origin_gets_no_cors_headers(settings: Any) -> None:
    """Not a preflight: the request is answered as any other, but without Access-Control-Allow-Origin, so a
    browser keeps the answer from the page."""
    headers = {**auth(make_jwt(sub="elsewhere")), "Origin": "https://evil.example"}
    async with running_app(settings) as client:
        resp = await client.post("/v1/tokens", json={"profile": "voice"}, headers=headers)
    assert resp.status_code == 201
    assert not any(k.startswith("access-control-") for k in resp.headers)


async def test_the_token_route_runs_the_apps_middleware(settings: Any) -> None:
    """One stack: the token route's answers carry the request id and are counted under the route's template;
    other methods get a 405 problem that says which exist."""
    async with running_app(settings) as client:
        issued = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(make_jwt(sub="stack")))
        wrong = await client.get("/v1/tokens", headers={"X-Request-ID": "my-req-1"})
        options = await client.options("/v1/tokens")
        metrics = (await client.get("/metrics")).text
    assert issued.status_code == 201
    assert len(issued.headers["x-request-id"]) == 24
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "OPTIONS, POST"
    assert wrong.headers["x-request-id"] == "my-req-1"
    assert wrong.json()["type"] == "https://livetoken.dev/problems/method-not-allowed"
    assert wrong.json()["request_id"] == "my-req-1"
    assert (options.status_code, options.headers["allow"]) == (204, "OPTIONS, POST")
    assert 'livetoken_http_requests_total{method="POST",route="/v1/tokens",status="201"} 1.0' in metrics
    assert 'livetoken_http_requests_total{method="GET",route="/v1/tokens",status="405"} 1.0' in metrics


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:5173", True),
        ("http://127.0.0.1:8080", True),
        ("http://localhost", True),
        ("https://localhost:5173", False),
        ("http://localhost.evil.example:5173", False),
        ("http://192.168.1.2:5173", False),
    ],
)
async def test_dev_mode_allows_local_dev_servers(tmp_path: Path, origin: str, allowed: bool) -> None:
    """Dev mode answers preflights from any port on localhost/127.0.0.1 over http, and nothing else."""
    from service import devmode

    settings = devmode.dev_settings(tmp_path, None)
    async with running_app(settings) as client:
        resp = await client.options("/v1/profiles", headers={**PREFLIGHT, "Origin": origin})
    assert resp.status_code == (204 if allowed else 403)
    assert resp.headers.get("access-control-allow-origin") == (origin if allowed else None)


async def test_every_answer_is_marked_no_store(settings: Any) -> None:
    """Tokens, refusals of every kind, profiles, health, readiness, metrics, preflights, unknown paths: a shared
    cache must never keep any of them."""
    token = make_jwt(sub="nostore")
    json_ct = {"Content-Type": "application/json"}
    async with running_app(settings) as client:
        answers = [
            await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token)),
            await client.post("/v1/tokens", content=b"{", headers={**auth(token), **json_ct}),
            await client.post("/v1/tokens", json={"profile": "voice"}, headers={"Authorization": "Bearer x"}),
            await client.post("/v1/tokens", json={"profile": "tools"}, headers=auth(token)),
            await client.post("/v1/tokens", json={"profile": "nope"}, headers=auth(token)),
            await client.get("/v1/tokens"),
            await client.get("/v1/profiles", headers=auth(token)),
            await client.get("/v1/profiles"),
            await client.get("/healthz"),
            await client.get("/readyz"),
            await client.get("/metrics"),
            await client.get("/no/such/path"),
            await client.options("/v1/tokens", headers=PREFLIGHT),
            await client.options("/v1/tokens", headers={**PREFLIGHT, "Origin": "https://evil.example"}),
        ]
    assert [(r.status_code, r.headers.get("cache-control")) for r in answers] == [
        (201, "no-store"),
        (400, "no-store"),
        (401, "no-store"),
        (403, "no-store"),
        (404, "no-store"),
        (405, "no-store"),
        (200, "no-store"),
        (401, "no-store"),
        (200, "no-store"),
        (200, "no-store"),
        (200, "no-store"),
        (404, "no-store"),
        (204, "no-store"),
        (403, "no-store"),
    ]


@pytest.mark.parametrize(
    "lookalike",
    [
        "https://app.example.evil.com",  # the allowed origin as a prefix of another host
        "https://evil.app.example",  # a subdomain of it
        "https://app.example:8443",  # another port
        "http://app.example",  # another scheme
        "https://app.examplex",
    ],
)
async def test_an_origin_is_allowed_only_when_it_equals_an_allowed_one(settings: Any, lookalike: str) -> None:
    """Origins are compared whole: a look-alike of `https://app.example` gets the 403 `origin-not-allowed` preflight
    answer and no Access-Control-Allow-Origin on a real request, while the allowed origin itself gets both."""
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    async with running_app(settings) as client:
        refused = await client.options("/v1/tokens", headers={"Origin": lookalike, **preflight})
        sent = await client.post("/v1/tokens", json={"profile": "voice"}, headers={"Origin": lookalike, **auth()})
        allowed = await client.options("/v1/tokens", headers={"Origin": ORIGIN, **preflight})
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/origin-not-allowed")
    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-origin" not in sent.headers
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
