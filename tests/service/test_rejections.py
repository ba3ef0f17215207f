"""Every bad input gets its own 4xx problem, cheaply, and never a 500."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from service import errors
from service.api.problems import render_problem
from service.metrics import Metrics
from tests.support.burst import release_together
from tests.support.processes import serving
from tests.support.service import auth, build_settings, running_app, service_env, write_config

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def settings(tmp_path: Path, emulator: Any, redis_url: str) -> Any:
    return build_settings(write_config(tmp_path), service_env(emulator, redis_url))


BAD_BODIES = [
    pytest.param(b'{"profile": "voice"', "application/json", 400, "malformed-request", id="truncated-json"),
    pytest.param(b"not json at all", "application/json", 400, "malformed-request", id="garbage"),
    pytest.param(b"", "application/json", 400, "malformed-request", id="empty-body"),
    pytest.param(b"[]", "application/json", 400, "malformed-request", id="array-not-object"),
    pytest.param(b'{"profile": 5}', "application/json", 400, "malformed-request", id="wrong-type"),
    pytest.param(
        b'{"profile": "voice", "uses": 100}', "application/json", 400, "malformed-request", id="unknown-field"
    ),
    pytest.param(b'{"voice": "Puck"}', "application/json", 400, "malformed-request", id="missing-profile"),
    pytest.param(b'{"profile": "../../etc"}', "application/json", 400, "malformed-request", id="bad-profile-chars"),
    pytest.param(b'{"profile": "voice"}', "text/plain", 415, "unsupported-media-type", id="text-plain"),
    pytest.param(b"profile=voice", "application/x-www-form-urlencoded", 415, "unsupported-media-type", id="form"),
    pytest.param(b'{"profile": "voice"}', "", 415, "unsupported-media-type", id="no-content-type"),
    pytest.param(b'{"profile": "' + b"a" * 20000 + b'"}', "application/json", 413, "payload-too-large", id="huge"),
    pytest.param(b'{"profile": "\xff\xfe"}', "application/json", 400, "malformed-request", id="invalid-utf8"),
]


@pytest.mark.parametrize(("body", "ctype", "status", "slug"), BAD_BODIES)
async def test_bad_bodies_get_their_problem(
    settings: Any, emulator: Any, body: bytes, ctype: str, status: int, slug: str
) -> None:
    """Malformed JSON, wrong types, unknown fields, wrong media type and huge bodies: 4xx problem+json, no mint."""
    before = emulator.mint_count()
    headers = {**auth()}
    if ctype:
        headers["Content-Type"] = ctype
    async with running_app(settings) as client:
        resp = await client.post("/v1/tokens", content=body, headers=headers)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert problem["type"].endswith("/" + slug)
    assert problem["status"] == status
    assert {"type", "title", "status", "detail"} <= set(problem)
    assert emulator.mint_count() == before


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="missing"),
        pytest.param("Bearer", id="empty-bearer"),
        pytest.param("Basic YWxpY2U6c2VjcmV0", id="basic"),
        pytest.param("Bearer not.a.jwt", id="garbage-jwt"),
        pytest.param("Bearer " + "a" * 20000, id="oversized"),
    ],
)
async def test_unauthenticated_requests_get_one_generic_401(settings: Any, header: str | None) -> None:
    """Every authentication failure is the same 401 with WWW-Authenticate, saying nothing about why."""
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Authorization"] = header
    async with running_app(settings) as client:
        resp = await client.post("/v1/tokens", json={"profile": "voice"}, headers=headers)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    assert resp.json()["detail"] == "The bearer token is missing or invalid."


async def test_unauthenticated_is_refused_before_the_body_is_judged(settings: Any) -> None:
    """Without a valid JWT a caller learns nothing about the body: 401 comes first."""
    async with running_app(settings) as client:
        resp = await client.post("/v1/tokens", content=b"garbage", headers={"Content-Type": "application/json"})
    assert resp.status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/tokens", 405), ("GET", "/v1/nothing", 404), ("DELETE", "/v1/profiles", 405), ("GET", "/", 404)],
)
async def test_unknown_routes_and_methods_are_problems(settings: Any, method: str, path: str, status: int) -> None:
    """Routing refusals are problem+json too."""
    async with running_app(settings) as client:
        resp = await client.request(method, path, headers=auth())
    assert resp.status_code == status
    assert resp.headers["content-type"].startswith("application/problem+json")


async def test_bad_idempotency_key_is_refused(settings: Any) -> None:
    """An Idempotency-Key with control characters or over 255 characters is a 400."""
    async with running_app(settings) as client:
        resp = await client.post(
            "/v1/tokens", json={"profile": "voice"}, headers={**auth(), "Idempotency-Key": "x" * 300}
        )
    assert resp.status_code == 400
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_two_authorization_headers_are_refused(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """Two Authorization header lines on the wire (a valid one first) get a 400 on both routes that read it: a
    proxy honouring the last one would disagree with us about who the caller is. Nothing is minted. (A real
    server over a raw socket: in-process test clients fold repeated headers into one.)"""
    valid = auth()["Authorization"]
    before = emulator.mint_count()
    with serving(write_config(tmp_path), service_env(emulator, redis_url)) as (_proc, url):
        host, port = url.removeprefix("http://").split(":")
        requests = [
            f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {valid}\r\nAuthorization: Bearer other\r\n"
            f"Content-Type: application/json\r\nContent-Length: 20\r\nConnection: close\r\n\r\n"
            '{"profile": "voice"}'.encode()
            for method, path in (("POST", "/v1/tokens"), ("GET", "/v1/profiles"))
        ]
        answers = asyncio.run(release_together(host, int(port), requests))
    for answer in answers:
        assert answer.status == 400
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.body == {
            "status": 400,
            "type": "https://livetoken.dev/problems/malformed-request",
            "title": "Malformed request",
            "detail": "Send exactly one Authorization header.",
            "request_id": answer.headers["x-request-id"],
        }
    assert emulator.mint_count() == before


def test_a_problem_body_is_the_same_json_whether_encoded_once_or_each_time() -> None:
    """A refusal with its class's own detail reuses bytes encoded once per class and status; one with a detail of
    its own is encoded anew. Either way the body is exactly the JSON of its fields (two framework 4xx statuses
    of one class do not share bytes; the request id is JSON-encoded)."""
    metrics = Metrics()
    cases: list[tuple[errors.LivetokenError, str | None]] = [
        (errors.RateLimited(retry_after=3), "0123abcd00000001"),
        (errors.RateLimited(retry_after=3), "0123abcd00000002"),
        (errors.RequestRefused(408), "a.b:c-d_e"),
        (errors.RequestRefused(431), None),
        (errors.MalformedRequest("Invalid request body: Object missing required field `profile`"), "r-1"),
        (errors.MalformedRequest(), "r-2"),
    ]
    for err, request_id in cases:
        expected = {"status": err.status, "type": err.type_uri, "title": err.title, "detail": err.detail}
        if request_id:
            expected["request_id"] = request_id
        status, body, headers = render_problem(metrics, err, request_id)
        assert (status, json.loads(body), headers) == (
            err.status,
            expected,
            {**err.headers(), "Cache-Control": "no-store"},
        )
        assert body == msgspec.json.encode(expected)  # byte for byte what encoding the whole object gives


async def test_every_refusal_gives_its_admission_slot_back(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """With room for two token requests at once, refusals after every step — a bad body, no JWT, a bad JWT, an
    unknown profile, a forbidden one, a voice not allowed, over the rate limit, a failed mint — each give their
    slot back: the caller after them still gets a token, not `503 overloaded`."""
    limits = 'subject = [{ rate = 1, period = "1h", burst = 1 }]'
    config = write_config(tmp_path, limits, extra='\n[server]\nmax_in_flight = 2\nqueue_timeout = "0s"\n')
    settings = build_settings(config, service_env(emulator, redis_url))
    spent = auth(sub="spent-caller")
    async with running_app(settings) as client:
        assert (await client.post("/v1/tokens", json={"profile": "voice"}, headers=spent)).status_code == 201
        refusals = [
            await client.post("/v1/tokens", content=b"{not json", headers={**auth(sub="b1"), **JSON}),
            await client.post("/v1/tokens", json={"profile": "voice"}),
            await client.post("/v1/tokens", json={"profile": "voice"}, headers={"Authorization": "Bearer x.y.z"}),
            await client.post("/v1/tokens", json={"profile": "nope"}, headers=auth(sub="b2")),
            await client.post("/v1/tokens", json={"profile": "tools"}, headers=auth(sub="b3")),
            await client.post("/v1/tokens", json={"profile": "voice", "voice": "Charon"}, headers=auth(sub="b4")),
            await client.post("/v1/tokens", json={"profile": "voice"}, headers=spent),
        ]
        emulator.fail_next(400)
        refusals.append(await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(sub="b5")))
        after = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(sub="after"))
    assert [r.status_code for r in refusals] == [400, 401, 401, 404, 403, 403, 429, 502]
    assert after.status_code == 201, after.text
