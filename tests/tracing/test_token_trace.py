"""What ops see in a trace of `POST /v1/tokens`: one trace per request, a span per step, the caller's trace kept,
Google called within it, and nothing secret anywhere in it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from service.config import Settings
from service.logging import fingerprint
from service.tracing import Tracing
from tests.support.processes import ROOT
from tests.support.service import auth, build_settings, make_jwt, service_env, write_config
from tests.tracing.conftest import traced_app
from tests.tracing.spans import (
    TRACEPARENT,
    TRACEPARENT_PARENT,
    TRACEPARENT_TRACE,
    attrs,
    children,
    hex_span,
    hex_trace,
    only,
    render_tree,
)

STEPS = [
    "livetoken.authenticate",
    "livetoken.authorize",
    "livetoken.idempotency",
    "livetoken.ratelimit",
    "livetoken.mint",
    "livetoken.answer",
]


async def test_one_token_request_is_one_trace_with_a_span_per_step(
    settings: Settings, tracing: Tracing, exporter: InMemorySpanExporter, emulator: Any, redis_url: str
) -> None:
    """The server span has the steps as children, in order; the rate limit's Redis call and the mint's HTTP call
    to Google are client spans under their steps, with the semantic conventions' attributes."""
    async with traced_app(settings, tracing) as client:
        exporter.clear()
        resp = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())
    assert resp.status_code == 201
    spans = exporter.get_finished_spans()
    server = only(spans, "POST /v1/tokens")
    assert server.kind is SpanKind.SERVER
    assert server.parent is None
    assert {hex_trace(s) for s in spans} == {hex_trace(server)}
    assert attrs(server) | {"http.route": "/v1/tokens"} == attrs(server)
    assert attrs(server)["http.request.method"] == "POST"
    assert attrs(server)["http.response.status_code"] == 201
    assert attrs(server)["livetoken.request_id"] == resp.headers["x-request-id"]
    assert [s.name for s in children(spans, server)] == STEPS

    redis_calls = children(spans, only(spans, "livetoken.ratelimit"))
    assert [s.name for s in redis_calls] == ["EVALSHA"]
    evalsha = attrs(redis_calls[0])
    assert redis_calls[0].kind is SpanKind.CLIENT
    assert evalsha["db.system"] == "redis"
    assert evalsha["server.address"] == "127.0.0.1"
    assert evalsha["server.port"] == urlsplit(redis_url).port
    assert evalsha["db.statement"].startswith("EVALSHA ?")
    assert set(evalsha["db.statement"].split()[1:]) == {"?"}

    attempts = children(spans, only(spans, "livetoken.mint"))
    assert [s.name for s in attempts] == ["livetoken.mint.attempt"]
    assert attrs(attempts[0])["livetoken.mint.attempt"] == 1
    (google,) = children(spans, attempts[0])
    assert google.name == "POST"
    assert google.kind is SpanKind.CLIENT
    assert attrs(google)["url.full"] == f"{emulator.base_url}/v1alpha/auth_tokens"
    assert attrs(google)["http.response.status_code"] == 200
    assert attrs(google)["server.address"] == "127.0.0.1"
    assert all(s.status.status_code is not StatusCode.ERROR for s in spans)


async def test_no_jwt_token_key_or_subject_in_any_span(
    settings: Settings, tracing: Tracing, exporter: InMemorySpanExporter, emulator: Any
) -> None:
    """Span names, attributes, events and the resource never carry the caller's JWT (not even one sent in the
    query string), the minted token, the API key or the subject; the caller appears as the logs' fingerprint."""
    jwt = make_jwt(sub="subject-carol-7f3a")
    async with traced_app(settings, tracing) as client:
        exporter.clear()
        resp = await client.post(
            f"/v1/tokens?access_token={jwt}",
            json={"profile": "voice"},
            headers={**auth(jwt), "Idempotency-Key": "retry-1", "User-Agent": "web/1.0"},
        )
        refused = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(jwt[:-3] + "AAA"))
    assert resp.status_code == 201
    assert refused.status_code == 401
    token = resp.json()["token"]
    spans = exporter.get_finished_spans()
    everything = repr(
        [(s.name, dict(s.attributes or {}), [(e.name, dict(e.attributes or {})) for e in s.events]) for s in spans]
    )
    everything += repr(dict(spans[0].resource.attributes))
    for secret in (jwt, jwt.split(".")[1], jwt.split(".")[2], token, token.split("/")[1], emulator.api_key):
        assert secret not in everything
    assert "subject-carol-7f3a" not in everything
    server = [s for s in spans if s.name == "POST /v1/tokens"]
    assert attrs(server[0])["url.query"] == "[REDACTED]"
    assert {attrs(s).get("livetoken.subject_fingerprint") for s in spans if s.name == "livetoken.authenticate"} == {
        fingerprint("subject-carol-7f3a"),
        None,  # the refused one: no caller
    }


async def test_a_callers_traceparent_is_honoured_and_google_sees_the_same_trace(
    settings: Settings, tracing: Tracing, exporter: InMemorySpanExporter, emulator: Any
) -> None:
    """A frontend's W3C traceparent makes the server span its child; the mint call carries the same trace to
    Google, parented on the HTTP client span (the emulator's introspection shows what it received)."""
    async with traced_app(settings, tracing) as client:
        exporter.clear()
        resp = await client.post(
            "/v1/tokens", json={"profile": "voice"}, headers={**auth(), "traceparent": TRACEPARENT}
        )
    assert resp.status_code == 201
    spans = exporter.get_finished_spans()
    server = only(spans, "POST /v1/tokens")
    assert hex_trace(server) == TRACEPARENT_TRACE
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == TRACEPARENT_PARENT
    assert server.parent.is_remote
    seen = emulator.last_request()
    assert seen["trace_id"] == TRACEPARENT_TRACE
    assert seen["traceparent"] == f"00-{TRACEPARENT_TRACE}-{hex_span(only(spans, 'POST'))}-01"


async def test_an_unsampled_caller_trace_is_followed_not_recorded(
    settings: Settings, tracing: Tracing, exporter: InMemorySpanExporter, emulator: Any
) -> None:
    """The default sampler follows the caller's decision: a traceparent marked not sampled records no span,
    and Google is told the same trace, not sampled."""
    unsampled = TRACEPARENT[:-2] + "00"
    async with traced_app(settings, tracing) as client:
        exporter.clear()
        resp = await client.post("/v1/tokens", json={"profile": "voice"}, headers={**auth(), "traceparent": unsampled})
    assert resp.status_code == 201
    assert exporter.get_finished_spans() == ()
    seen = emulator.last_request()
    assert seen["trace_id"] == TRACEPARENT_TRACE
    assert seen["traceparent"].endswith("-00")


async def test_each_mint_attempt_is_a_span_with_googles_status(
    settings: Settings, tracing: Tracing, exporter: InMemorySpanExporter, emulator: Any
) -> None:
    """When Google answers 503 and the retry succeeds, the mint has two attempt spans: the first failed (its
    HTTP span says 503), the second carries the 200."""
    emulator.fail_next(503)
    async with traced_app(settings, tracing) as client:
        exporter.clear()
        resp = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())
    assert resp.status_code == 201
    spans = exporter.get_finished_spans()
    attempts = children(spans, only(spans, "livetoken.mint"))
    assert [attrs(a)["livetoken.mint.attempt"] for a in attempts] == [1, 2]
    failed, retried = attempts
    assert failed.status.status_code is StatusCode.ERROR
    assert attrs(failed)["error.type"] == "ServerError"
    assert [attrs(h)["http.response.status_code"] for h in children(spans, failed)] == [503]
    assert retried.status.status_code is not StatusCode.ERROR
    assert [attrs(h)["http.response.status_code"] for h in children(spans, retried)] == [200]


async def test_a_refusal_ends_the_trace_at_the_step_that_refused(
    tmp_path: Any, tracing: Tracing, exporter: InMemorySpanExporter, emulator: Any, redis_url: str
) -> None:
    """A bad JWT fails the authentication span (error.type is the problem's slug) and nothing after it runs; a
    caller over its limit fails the rate-limit span and no mint span exists."""
    limits = 'subject = [{ rate = 1, period = "1h", burst = 1 }]'
    settings = build_settings(write_config(tmp_path, limits=limits), service_env(emulator, redis_url))
    async with traced_app(settings, tracing) as client:
        exporter.clear()
        bad = await client.post("/v1/tokens", json={"profile": "voice"}, headers={"Authorization": "Bearer x.y.z"})
        unauthenticated = exporter.get_finished_spans()
        exporter.clear()
        await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(sub="dave"))
        exporter.clear()
        limited = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(sub="dave"))
        over_limit = exporter.get_finished_spans()
    assert bad.status_code == 401
    server = only(unauthenticated, "POST /v1/tokens")
    assert [s.name for s in children(unauthenticated, server)] == ["livetoken.authenticate"]
    failed = only(unauthenticated, "livetoken.authenticate")
    assert failed.status.status_code is StatusCode.ERROR
    assert attrs(failed)["error.type"] == "invalid-token"
    assert attrs(server)["http.response.status_code"] == 401

    assert limited.status_code == 429
    server = only(over_limit, "POST /v1/tokens")
    assert [s.name for s in children(over_limit, server)] == STEPS[:4]
    assert attrs(only(over_limit, "livetoken.ratelimit"))["error.type"] == "rate-limited"
    assert attrs(only(over_limit, "livetoken.ratelimit"))["livetoken.ratelimit.allowed"] is False


async def test_probes_scrapes_and_warm_up_start_no_trace(
    settings: Settings, tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    """Start-up (Redis and upstream warm-up: dozens of calls), /healthz, /readyz (a Redis PING each) and /metrics
    record nothing: a trace is a request someone asked about."""
    async with traced_app(settings, tracing) as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 200
    assert exporter.get_finished_spans() == ()


def _skeleton(tree: str) -> list[str]:
    """Each line's indentation and span name (durations and attributes vary from run to run)."""
    return [line.split(" [")[0] for line in tree.splitlines()]


def readme_tree() -> str:
    """The span tree the observability page shows under Tracing."""
    readme = (ROOT / "docs" / "operations" / "observability.md").read_text()
    start = readme.index("```\n", readme.index("One request with an Idempotency-Key")) + 4
    return readme[start : readme.index("```", start)]


async def test_the_readme_tree(settings: Settings, tracing: Tracing, exporter: InMemorySpanExporter) -> None:
    """The tree docs/operations/observability.md shows is this test's: one request with an Idempotency-Key, as
    text; its spans, nesting and order are the ones recorded here."""
    async with traced_app(settings, tracing) as client:
        warm = await client.post("/v1/tokens", json={"profile": "voice"}, headers={**auth(), "Idempotency-Key": "k-0"})
        assert warm.status_code == 201  # the Idempotency-Key store's script is loaded in Redis now
        exporter.clear()
        resp = await client.post(
            "/v1/tokens",
            json={"profile": "voice"},
            headers={**auth(jti="readme"), "Idempotency-Key": "k-1", "User-Agent": "web/1"},  # a JWT not seen yet
        )
    assert resp.status_code == 201
    tree = render_tree(exporter.get_finished_spans())
    lines = [line.split(" [")[0] for line in tree.splitlines()]
    assert lines[0] == "POST /v1/tokens"
    assert [line.strip() for line in lines if line.startswith("  ") and not line.startswith("    ")] == STEPS
    assert "      POST" in lines  # the HTTP call to Google, under the mint's attempt
    print(tree)  # `pytest -s -k readme_tree` prints what the page quotes
    assert _skeleton(readme_tree()) == lines
