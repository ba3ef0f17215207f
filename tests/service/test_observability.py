"""Health, readiness, metrics and logs: what operators see, and that no secret is ever in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from service.logging import merge_request_context
from service.metrics import Metrics
from tests.support.redis_proc import RedisProcess
from tests.support.service import auth, build_settings, make_jwt, running_app, service_env, write_config


@pytest.fixture
def settings(tmp_path: Path, emulator: Any, redis_url: str) -> Any:
    return build_settings(write_config(tmp_path), service_env(emulator, redis_url))


async def test_healthz_and_readyz(settings: Any) -> None:
    """/healthz answers without dependencies; /readyz reports config, Redis and the upstream circuit."""
    async with running_app(settings) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["rate_limiter"] == "ok"
    assert body["rate_limiter_backend"] == "redis"
    assert body["upstream_circuit"] == "closed"


async def test_readyz_tells_the_truth_when_redis_is_down(tmp_path: Path, emulator: Any) -> None:
    """With fail_mode closed and Redis gone, /readyz is 503 not_ready and token requests get 503."""
    redis = RedisProcess()
    redis.start()
    try:
        settings = build_settings(write_config(tmp_path), service_env(emulator, redis.url))
        async with running_app(settings) as client:
            assert (await client.get("/readyz")).status_code == 200
            redis.stop()
            ready = await client.get("/readyz")
            issued = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())
    finally:
        redis.close()
    assert ready.status_code == 503
    assert ready.json()["rate_limiter"] == "unavailable"
    assert issued.status_code == 503
    assert issued.headers["retry-after"]
    assert issued.json()["type"].endswith("/rate-limiter-unavailable")


async def test_metrics_count_requests_tokens_and_rejections(settings: Any) -> None:
    """/metrics exposes livetoken_ series for requests, tokens by profile and rejections by reason."""
    metrics = Metrics()
    async with running_app(settings, metrics) as client:
        await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())
        await client.post("/v1/tokens", json={"profile": "voice"}, headers={"Authorization": "Bearer x"})
        await client.post("/v1/tokens", json={"profile": "nope"}, headers=auth())
        text = (await client.get("/metrics")).text
    assert 'livetoken_tokens_issued_total{profile="voice"} 1.0' in text
    assert 'livetoken_rejections_total{reason="invalid-token"} 1.0' in text
    assert 'livetoken_rejections_total{reason="profile-not-found"} 1.0' in text
    assert 'livetoken_http_requests_total{method="POST",route="/v1/tokens",status="201"} 1.0' in text
    assert "livetoken_upstream_request_duration_seconds_bucket" in text
    assert "livetoken_build_info" in text


async def test_logs_carry_request_context_and_one_audit_line(settings: Any) -> None:
    """Each token yields one audit line with request_id, subject, profile, outcome and a fingerprint; a line logged
    after the request (in the same task, as an in-process client runs it) carries none of them."""
    async with running_app(settings) as client:
        with capture_logs(processors=[merge_request_context]) as logs:
            resp = await client.post(
                "/v1/tokens", json={"profile": "voice"}, headers={**auth(sub="carol"), "X-Request-ID": "req-123"}
            )
            structlog.get_logger().info("after_the_request")  # same task: the request's context is gone
    assert resp.headers["x-request-id"] == "req-123"
    assert [e for e in logs if e["event"] == "after_the_request"] == [
        {"event": "after_the_request", "log_level": "info"}
    ]
    audit = [e for e in logs if e["event"] == "token_issued"]
    assert len(audit) == 1
    line = audit[0]
    assert line["request_id"] == "req-123"
    assert line["subject"] == "carol"
    assert line["tenant"] == "acme"
    assert line["profile"] == "voice"
    assert line["outcome"] == "issued"
    assert line["token_fingerprint"].startswith("sha256:")
    assert resp.json()["token"] not in json.dumps(logs, default=str)


async def test_no_secret_reaches_logs_metrics_or_problem_bodies(
    tmp_path: Path, emulator: Any, redis_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """A run over success and every rejection with known secrets: none appears in logs, metrics or bodies."""
    from service.logging import configure_logging

    configure_logging("json", "debug")
    settings = build_settings(
        write_config(tmp_path, 'subject = [{ rate = 2, period = "1h", burst = 2 }]'), service_env(emulator, redis_url)
    )
    jwt_token = make_jwt(sub="secret-keeper")
    seen: list[str] = []
    metrics = Metrics()
    async with running_app(settings, metrics) as client:
        for payload, headers in [
            ({"profile": "voice"}, auth(jwt_token)),
            ({"profile": "voice"}, {**auth(jwt_token), "Idempotency-Key": "k1"}),
            ({"profile": "voice"}, {**auth(jwt_token), "Idempotency-Key": "k1"}),
            ({"profile": "voice"}, auth(jwt_token)),  # rate limited
            ({"profile": "tools"}, auth(jwt_token)),  # forbidden
            ({"profile": "nope"}, auth(jwt_token)),  # not found
            ({"profile": "voice"}, {"Authorization": f"Bearer {jwt_token}x"}),  # tampered
            ({"bogus": 1}, auth(jwt_token)),
        ]:
            resp = await client.post("/v1/tokens", json=payload, headers=headers)
            seen.append(resp.text)
        for fault in ([400], [503, 503, 503], [429, 429, 429], ["drop", "drop", "drop"]):
            emulator.fail_next(*fault)
            seen.append((await client.post("/v1/tokens", json={"profile": "text"}, headers=auth(sub="x2"))).text)
        seen.append((await client.get("/metrics")).text)
        seen.append((await client.get("/readyz")).text)
    structlog.reset_defaults()
    tokens = [json.loads(t)["token"] for t in seen[:3] if t.startswith("{") and '"token"' in t]
    assert tokens, "expected at least one issued token in the run"
    out, err = capfd.readouterr()
    haystacks = {"logs": out + err, "metrics": seen[-2], "problem bodies": "\n".join(seen[3:-2])}
    secrets = {
        "API key": emulator.api_key,
        "caller JWT": jwt_token,
        "JWT signature": jwt_token.rsplit(".", 1)[1],
        **{f"minted token {i}": t for i, t in enumerate(tokens)},
        **{f"minted token id {i}": t.split("/", 1)[1] for i, t in enumerate(tokens)},
    }
    assert "token_issued" in out + err, "the captured logs should contain the audit line"
    for where, text in haystacks.items():
        for what, value in secrets.items():
            assert value not in text, f"{what} leaked into {where}"
