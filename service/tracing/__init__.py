"""Tracing (optional extra `livetoken[otel]`): OpenTelemetry spans from a caller's request through Redis to Google.

Off unless the standard `OTEL_*` variables configure it (environment.py); off, livetoken imports none of
OpenTelemetry and a request runs none of it. `open_tracing` is called once, at server start-up; the app hands the
result to every layer that makes spans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.tracing.base import NO_TRACING, Attributes, AttributeValue, TracedSpan, Tracing
from service.tracing.environment import TracingConfig, tracing_config

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "NO_TRACING",
    "AttributeValue",
    "Attributes",
    "TracedSpan",
    "Tracing",
    "TracingConfig",
    "open_tracing",
    "tracing_config",
]


def open_tracing(config: TracingConfig, *, version: str = "0", exporter: SpanExporter | None = None) -> Tracing:
    """The tracing `config` asks for: OpenTelemetry's (imported now) when enabled, the no-op otherwise.

    `exporter` (tests) receives every span synchronously instead of the configured exporters.
    """
    if not config.enabled:
        return NO_TRACING
    from service.tracing.otel import OpenTelemetryTracing

    return OpenTelemetryTracing(config, version=version, exporter=exporter)
