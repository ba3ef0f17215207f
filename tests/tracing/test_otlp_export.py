"""End to end: `livetoken serve` configured only by OTEL_* variables exports a token request's trace over
OTLP/HTTP to a real receiver, and its log lines carry the same trace id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.support.processes import ServiceProcess
from tests.support.redis_proc import free_port
from tests.support.service import auth, service_env, write_config
from tests.support.waiting import wait_until
from tests.tracing.spans import TRACEPARENT, TRACEPARENT_PARENT, TRACEPARENT_TRACE
from tests.tracing.test_token_trace import STEPS

SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3  # OTLP's enum


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    """An OTLP/HTTP receiver on a free local port (a collector's 4318 stand-in)."""
    found = OTLPReceiver()
    yield found
    found.close()


def _named(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    (span,) = [s for s in spans if s.name == name]
    return span


def test_serve_exports_the_trace_of_a_token_request_over_otlp(
    tmp_path: Path, emulator: Any, redis_url: str, receiver: OTLPReceiver
) -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME set, the receiver gets the request's spans as one
    tree under the caller's trace, with the service's resource; the audit log line names the same trace."""
    env = service_env(
        emulator,
        redis_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_SERVICE_NAME="livetoken-e2e",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    port = free_port()
    proc = ServiceProcess(["serve", "--config", str(write_config(tmp_path)), "--port", str(port)], env)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(url + "/healthz")
        resp = httpx.post(
            url + "/v1/tokens", json={"profile": "voice"}, headers={**auth(), "traceparent": TRACEPARENT}, timeout=10
        )
        assert resp.status_code == 201

        def complete() -> bool:
            names = [s.name for s in receiver.spans(TRACEPARENT_TRACE)]
            return all(name in names for name in ["POST /v1/tokens", *STEPS, "POST", "EVALSHA"])

        wait_until(complete, "the whole trace reached the receiver")
    finally:
        exit_code = proc.stop()
    assert exit_code == 0, proc.text
    spans = receiver.spans(TRACEPARENT_TRACE)
    server = _named(spans, "POST /v1/tokens")
    assert server.kind == SPAN_KIND_SERVER
    assert server.parent_span_id == TRACEPARENT_PARENT
    assert server.attributes["http.response.status_code"] == 201
    assert server.resource["service.name"] == "livetoken-e2e"
    assert server.resource["deployment.environment"] == "test"
    steps = [s for s in spans if s.parent_span_id == server.span_id]
    assert sorted(s.name for s in steps) == sorted(STEPS)
    google = _named(spans, "POST")
    assert google.kind == SPAN_KIND_CLIENT
    assert google.parent_span_id == _named(spans, "livetoken.mint.attempt").span_id
    assert emulator.last_request()["traceparent"] == f"00-{TRACEPARENT_TRACE}-{google.span_id}-01"
    log_lines = [json.loads(line) for line in proc.output if line.startswith("{")]
    (issued,) = [line for line in log_lines if line["event"] == "token_issued"]
    assert issued["trace_id"] == TRACEPARENT_TRACE
    assert issued["span_id"] == _named(spans, "livetoken.answer").span_id
    (started,) = [line for line in log_lines if line["event"] == "service_started"]
    assert started["tracing"] == f"otlp {receiver.url}/v1/traces; sampler parentbased_always_on"


def test_spans_still_buffered_at_shutdown_are_exported(
    tmp_path: Path, emulator: Any, redis_url: str, receiver: OTLPReceiver
) -> None:
    """SIGTERM exports what the batch processor still holds: a request answered just before a deploy's restart
    is not lost from the traces (the batch delay here is a minute, so only the shutdown can have sent it)."""
    env = service_env(emulator, redis_url, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="60000")
    port = free_port()
    proc = ServiceProcess(["serve", "--config", str(write_config(tmp_path)), "--port", str(port)], env)
    proc.start()
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz")
        resp = httpx.post(
            f"http://127.0.0.1:{port}/v1/tokens",
            json={"profile": "voice"},
            headers={**auth(), "traceparent": TRACEPARENT},
            timeout=10,
        )
        assert resp.status_code == 201
        assert receiver.spans(TRACEPARENT_TRACE) == []
    finally:
        exit_code = proc.stop()
    assert exit_code == 0, proc.text
    assert "POST /v1/tokens" in [s.name for s in receiver.spans(TRACEPARENT_TRACE)]
