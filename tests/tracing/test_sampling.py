"""The sampler is OpenTelemetry's, as OTEL_TRACES_SAMPLER names it: parent-based samplers follow the caller's
decision, the others decide by trace id alone."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.config import Settings
from service.tracing import TracingConfig, open_tracing
from tests.support.service import auth
from tests.tracing.conftest import traced_app
from tests.tracing.spans import TRACEPARENT, TRACEPARENT_TRACE


@pytest.mark.parametrize(
    ("sampler", "recorded"),
    [
        ("parentbased_traceidratio", True),  # 0% of new traces, but a caller's sampled trace is followed
        ("traceidratio", False),  # 0% of traces, whatever the caller asks
    ],
)
async def test_a_zero_ratio_sampler_and_a_sampled_caller(
    settings: Settings, exporter: InMemorySpanExporter, emulator: Any, sampler: str, recorded: bool
) -> None:
    """With a ratio of 0, a caller's sampled traceparent is recorded under the parent-based sampler and not under
    the plain one; either way Google gets the caller's trace id, flagged as this service decided."""
    tracing = open_tracing(TracingConfig(enabled=True, sampler=sampler, sampler_ratio=0.0), exporter=exporter)
    try:
        async with traced_app(settings, tracing) as client:
            resp = await client.post(
                "/v1/tokens", json={"profile": "voice"}, headers={**auth(), "traceparent": TRACEPARENT}
            )
            seen = emulator.last_request()["traceparent"]
            plain = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())
    finally:
        tracing.shutdown()
    assert (resp.status_code, plain.status_code) == (201, 201)
    traces = {format(s.context.trace_id, "032x") for s in exporter.get_finished_spans() if s.context is not None}
    assert traces == ({TRACEPARENT_TRACE} if recorded else set())  # the request without a traceparent: not sampled
    assert seen.startswith(f"00-{TRACEPARENT_TRACE}-")
    assert seen.endswith("-01" if recorded else "-00")
