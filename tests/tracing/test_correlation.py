"""From a log line or a slow histogram bucket to the trace: ids on log lines, trace ids as exemplars."""

from __future__ import annotations

import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from service.config import Settings
from service.logging import add_trace_ids, merge_request_context
from service.metrics import Metrics
from service.tracing import Tracing
from tests.support.service import auth, running_app
from tests.tracing.conftest import traced_app
from tests.tracing.spans import TRACEPARENT, TRACEPARENT_TRACE, hex_span, only

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


async def test_every_log_line_of_a_traced_request_carries_its_trace_and_span(
    settings: Settings, tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    """The audit line carries the request's trace id and the id of the span it was written in (the answer);
    a line outside any request carries neither."""
    async with traced_app(settings, tracing) as client:
        exporter.clear()
        with capture_logs(processors=[merge_request_context, add_trace_ids]) as logs:
            resp = await client.post(
                "/v1/tokens", json={"profile": "voice"}, headers={**auth(), "traceparent": TRACEPARENT}
            )
            structlog.get_logger("test").info("outside_a_request")
    assert resp.status_code == 201
    issued = [line for line in logs if line["event"] == "token_issued"]
    assert len(issued) == 1
    assert issued[0]["trace_id"] == TRACEPARENT_TRACE
    assert issued[0]["span_id"] == hex_span(only(exporter.get_finished_spans(), "livetoken.answer"))
    outside = [line for line in logs if line["event"] == "outside_a_request"]
    assert "trace_id" not in outside[0]
    assert "span_id" not in outside[0]


async def test_latency_histograms_carry_the_trace_id_as_an_exemplar_in_openmetrics(
    settings: Settings, tracing: Tracing
) -> None:
    """A Prometheus scrape asking for OpenMetrics gets exemplars with the trace id on the request, rate-limit
    and upstream latency buckets; a plain scrape gets the text format, without exemplars."""
    metrics = Metrics()
    async with traced_app(settings, tracing, metrics) as client:
        resp = await client.post(
            "/v1/tokens", json={"profile": "voice"}, headers={**auth(), "traceparent": TRACEPARENT}
        )
        scraped = await client.get("/metrics", headers={"Accept": "application/openmetrics-text;version=1.0.0"})
        plain = await client.get("/metrics")
    assert resp.status_code == 201
    assert scraped.headers["content-type"].startswith(OPENMETRICS)
    exemplars = {
        sample.name + sample.labels.get("route", sample.labels.get("outcome", sample.labels.get("backend", ""))): (
            sample.exemplar.labels
        )
        for family in text_string_to_metric_families(scraped.text)  # type: ignore[no-untyped-call]  # untyped parser
        for sample in family.samples
        if sample.exemplar is not None
    }
    assert exemplars == {
        "livetoken_http_request_duration_seconds_bucket/v1/tokens": {"trace_id": TRACEPARENT_TRACE},
        "livetoken_ratelimit_check_duration_seconds_bucketredis": {"trace_id": TRACEPARENT_TRACE},
        "livetoken_upstream_request_duration_seconds_bucketok": {"trace_id": TRACEPARENT_TRACE},
    }
    assert plain.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "trace_id" not in plain.text
    assert 'livetoken_tokens_issued_total{profile="voice"} 1.0' in plain.text


async def test_untraced_service_has_no_exemplars_and_no_trace_ids(settings: Settings) -> None:
    """With tracing off, OpenMetrics scrapes work and carry no exemplar, and log lines carry no trace ids,
    even when the caller sends a traceparent."""
    async with running_app(settings) as client:
        with capture_logs(processors=[merge_request_context, add_trace_ids]) as logs:
            resp = await client.post(
                "/v1/tokens", json={"profile": "voice"}, headers={**auth(), "traceparent": TRACEPARENT}
            )
        scraped = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert resp.status_code == 201
    assert scraped.headers["content-type"].startswith(OPENMETRICS)
    assert scraped.text.rstrip().endswith("# EOF")
    assert " # {" not in scraped.text
    assert all("trace_id" not in line for line in logs)
