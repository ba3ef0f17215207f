"""Tracing with the OpenTelemetry SDK and its instrumentations; imported only when tracing is on.

What is traced, and by what:
- the server span of every request but /healthz, /readyz and /metrics: Litestar's OpenTelemetry plugin (ASGI
  instrumentation), which honours a caller's W3C `traceparent`;
- the Idempotency-Key store's and refunds' Redis commands: redis instrumentation on the one shared client;
- the limiter's EVALSHA (lean connections, which redis instrumentation cannot see): a span of its own;
- each mint attempt's HTTP call: a client span of the minter's own (its connections are not aiohttp's or
  httpx's), with the stable HTTP semantic conventions, whose `traceparent` goes to Google; JWKS fetches: httpx
  instrumentation on the verifier's client;
- the flow's steps: `span()` (service/issuing/flow.py, service/api/token_route.py).

No attribute carries a JWT, token, API key or subject: query strings and credential headers are redacted, Redis
commands are recorded as `EVALSHA ? ? …`, and the caller appears only as a fingerprint.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

import httpx
from litestar.plugins import PluginProtocol
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.http import get_custom_headers
from opentelemetry.util.types import Attributes as OtelAttributes

from service.logging import correlate_traces
from service.tracing.base import NO_SPAN, Attributes, TracedSpan, Tracing
from service.tracing.environment import TracingConfig

UNTRACED_PATHS = [r"^/healthz$", r"^/readyz$", r"^/metrics$"]  # probes and scrapes: no trace per poll
SECRET_HEADERS = ["authorization", "proxy-authorization", "cookie", "set-cookie", "x-goog-api-key"]
REDACTED = "[REDACTED]"


class NoOrphanClientSpans(Sampler):
    """A Redis command or HTTP call made outside any request (warm-up, readiness probes, the start-up JWKS
    fetch) starts no trace of its own; every other decision is the configured sampler's."""

    def __init__(self, inner: Sampler) -> None:
        self._inner = inner

    def should_sample(  # noqa: PLR0917 - the SDK's Sampler signature
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: OtelAttributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        """Drop a client span without a parent; otherwise ask the configured sampler."""
        if kind is SpanKind.CLIENT and not trace.get_current_span(parent_context).get_span_context().is_valid:
            return SamplingResult(Decision.DROP)
        return self._inner.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        """How the sampler shows in diagnostics."""
        return f"NoOrphanClientSpans{{{self._inner.get_description()}}}"


def sampler_for(config: TracingConfig) -> Sampler:
    """The configured `OTEL_TRACES_SAMPLER`, wrapped so that no client call outside a request starts a trace."""
    roots: dict[str, Sampler] = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": TraceIdRatioBased(config.sampler_ratio),
    }
    root = roots[config.sampler.removeprefix("parentbased_")]  # names checked in environment.py
    return NoOrphanClientSpans(ParentBased(root) if config.sampler.startswith("parentbased_") else root)


def _resource(version: str) -> Resource:
    """OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES as the SDK reads them; `livetoken` when no name is given."""
    resource = Resource.create({"service.version": version})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "livetoken"}))
    return resource


def _server_span_name(scope: Any) -> tuple[str, dict[str, Any]]:
    """The method alone until the router has matched a route (RequestContextMiddleware adds the template): a
    raw path in a span name would make one name per probe of a random URL."""
    return str(scope.get("method") or scope.get("type", "")), {}


def _redact_query(span: Any, scope: Any) -> None:
    """No query string reaches a span: this API takes none, so one is noise or a credential sent by mistake."""
    if not scope.get("query_string") or not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    span.set_attribute("url.query", REDACTED)
    if "http.target" in attributes:
        span.set_attribute("http.target", scope.get("path", ""))
    if "http.url" in attributes:
        span.set_attribute("http.url", str(attributes["http.url"]).split("?", 1)[0])


def _current_ids() -> tuple[str, str] | None:
    """The current span's trace and span ids as W3C writes them (for log lines), if there is a span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class _Span:
    """One `with` block as the current span; a failure is named by `error.type` (a refusal by its slug), never
    by its message, which might quote what a caller sent."""

    __slots__ = ("_attributes", "_kind", "_name", "_span", "_token", "_tracer")

    def __init__(self, tracer: trace.Tracer, name: str, attributes: Attributes | None, kind: SpanKind) -> None:
        self._tracer = tracer
        self._name = name
        self._attributes = attributes
        self._kind = kind

    def __enter__(self) -> trace.Span:
        self._span = self._tracer.start_span(self._name, kind=self._kind, attributes=self._attributes)
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        span = self._span
        if exc is not None and span.is_recording():
            span.set_attribute("error.type", getattr(exc, "slug", None) or type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR))
        otel_context.detach(self._token)
        span.end()


class OpenTelemetryTracing(Tracing):
    """Spans through one TracerProvider, exported as the environment says (or to `exporter`, for tests)."""

    enabled = True

    def __init__(self, config: TracingConfig, *, version: str = "0", exporter: SpanExporter | None = None) -> None:
        # Stable HTTP conventions (http.request.method, url.full, server.address, …) for every instrumentation;
        # they read this variable once, when the first of them is built.
        os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
        if not config.propagators_set:
            # W3C trace context only: baggage a caller sends is not forwarded to Google or the IdP.
            propagate.set_global_textmap(TraceContextTextMapPropagator())
        self.config = config
        self._exports = [f"otlp {config.endpoint}" if name == "otlp" else name for name in config.exporters]
        self.provider = TracerProvider(sampler=sampler_for(config), resource=_resource(version), shutdown_on_exit=False)
        if exporter is not None:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
            self._exports = [type(exporter).__name__]
        else:
            for name in config.exporters:
                if name == "otlp":
                    self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
                else:
                    self.provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        self._tracer = self.provider.get_tracer("livetoken", version)
        self._meters = NoOpMeterProvider()  # livetoken's metrics are Prometheus' (service/metrics.py)
        correlate_traces(_current_ids)

    def span(
        self, name: str, attributes: Attributes | None = None, *, client: bool = False
    ) -> AbstractContextManager[TracedSpan]:
        """See Tracing.span. Inside a trace that is not sampled no child would be either (every sampler livetoken
        offers decides a trace as a whole), so none is made: an unsampled request costs little more than off."""
        current = trace.get_current_span().get_span_context()
        if current.is_valid and not current.trace_flags.sampled:
            return NO_SPAN
        return _Span(self._tracer, name, attributes, SpanKind.CLIENT if client else SpanKind.INTERNAL)

    def exemplar(self) -> dict[str, str] | None:
        """See Tracing.exemplar."""
        context = trace.get_current_span().get_span_context()
        if not context.trace_flags.sampled:
            return None
        return {"trace_id": format(context.trace_id, "032x")}

    def name_route(self, method: str, route: str, request_id: str) -> None:
        """See Tracing.name_route."""
        span = trace.get_current_span()
        if span.is_recording():
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("livetoken.request_id", request_id)

    def plugins(self) -> list[PluginProtocol]:
        """See Tracing.plugins."""
        sanitize = [*SECRET_HEADERS, *get_custom_headers("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS")]
        config = OpenTelemetryConfig(
            tracer_provider=self.provider,
            meter_provider=self._meters,
            scope_span_details_extractor=_server_span_name,
            server_request_hook_handler=_redact_query,
            exclude=UNTRACED_PATHS,
            exclude_spans=["receive", "send"],
            http_capture_headers_sanitize_fields=sanitize,
        )
        return [OpenTelemetryPlugin(config)]

    def propagation_headers(self) -> dict[str, str]:
        """See Tracing.propagation_headers."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier

    def instrument_httpx(self, client: httpx.AsyncClient) -> None:
        """See Tracing.instrument_httpx."""
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=self.provider, meter_provider=self._meters)

    def instrument_redis(self, client: Any) -> None:
        """See Tracing.instrument_redis."""
        RedisInstrumentor.instrument_client(client, tracer_provider=self.provider)

    def describe(self) -> str:
        """See Tracing.describe."""
        return f"{', '.join(self._exports)}; sampler {self.config.sampler}"

    def shutdown(self) -> None:
        """See Tracing.shutdown."""
        correlate_traces(None)
        self.provider.shutdown()
