"""Whether tracing is on, read from OpenTelemetry's own `OTEL_*` variables (livetoken adds no names of its own).

Tracing is on when the `livetoken[otel]` extra is installed and `OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_TRACES_EXPORTER` is set, unless `OTEL_SDK_DISABLED=true` or
`OTEL_TRACES_EXPORTER=none`. Deciding imports nothing of OpenTelemetry. The values livetoken acts on are checked
here, so a bad one stops `serve` and `check-config` with one line naming the variable; the rest (service name,
resource attributes, headers, timeouts, batching) the OpenTelemetry SDK reads itself.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from service.config import ConfigError

EXPORTERS = ("otlp", "console")
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
# What the extra installs; tracing configured without one of them is off, with a warning at start-up.
EXTRA_MODULES = (
    "opentelemetry.sdk",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.instrumentation.asgi",
    "opentelemetry.instrumentation.httpx",
    "opentelemetry.instrumentation.redis",
)

# The OTEL_* variables livetoken reads or sets (name, meaning), for the environment reference
# (docs/reference/environment.md); the OpenTelemetry SDK reads the rest of its own itself.
VARIABLES: tuple[tuple[str, str], ...] = (
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "Turns tracing on: OTLP over HTTP/protobuf to `<endpoint>/v1/traces` (a collector's port 4318).",
    ),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "Turns tracing on: the full OTLP traces URL (wins over the one above)."),
    (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "Only `http/protobuf` is accepted (`…_TRACES_PROTOCOL` wins); another stops start-up.",
    ),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "As `OTEL_EXPORTER_OTLP_PROTOCOL`, for traces."),
    (
        "OTEL_TRACES_EXPORTER",
        "`otlp` (default), `console` (spans on stdout), or `none` (off); setting it turns tracing on.",
    ),
    ("OTEL_SDK_DISABLED", "`true` turns tracing off whatever else is set."),
    (
        "OTEL_TRACES_SAMPLER",
        "The SDK's sampler names; default `parentbased_always_on` (a caller's `traceparent` decides, a request "
        "without one is sampled).",
    ),
    ("OTEL_TRACES_SAMPLER_ARG", "The ratio, 0 to 1, for the `traceidratio` samplers."),
    (
        "OTEL_SERVICE_NAME",
        "The resource's `service.name` (read by the SDK); default `livetoken`. `service.version` is the package's.",
    ),
    ("OTEL_RESOURCE_ATTRIBUTES", "More resource attributes, read by the SDK."),
    (
        "OTEL_PROPAGATORS",
        "Unset: W3C trace context only, so baggage a caller sends is not forwarded to Google or the identity "
        "provider; set it to choose others.",
    ),
    (
        "OTEL_SEMCONV_STABILITY_OPT_IN",
        "Defaults to `http` (set by livetoken when unset): HTTP spans carry the stable semantic conventions.",
    ),
    (
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",
        "More header names whose values are redacted in spans, besides the credentials livetoken always redacts.",
    ),
    (
        "OTEL_PYTHON_LITESTAR_EXCLUDED_URLS",
        "More paths to leave untraced, besides `/healthz`, `/readyz` and `/metrics` (read by Litestar's plugin).",
    ),
)


@dataclass(frozen=True)
class TracingConfig:
    """Tracing as the environment configures it."""

    enabled: bool = False
    """Whether spans are made and exported."""
    exporters: tuple[str, ...] = ("otlp",)
    """`OTEL_TRACES_EXPORTER`: `otlp` (OTLP over HTTP/protobuf) and/or `console`."""
    sampler: str = "parentbased_always_on"
    """`OTEL_TRACES_SAMPLER`: the SDK's sampler names (parentbased_* follow a caller's sampled flag)."""
    sampler_ratio: float = 1.0
    """`OTEL_TRACES_SAMPLER_ARG`, for the traceidratio samplers."""
    endpoint: str | None = None
    """Where OTLP goes (for the start-up log line; the exporter reads the variables itself)."""
    propagators_set: bool = False
    """Whether `OTEL_PROPAGATORS` is set; when it is not, only W3C trace context is read and sent (no baggage)."""
    note: str | None = None
    """Why tracing is off although a variable asked for it (logged once at start-up)."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _extra_missing(modules: tuple[str, ...]) -> str | None:
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:  # a parent package is missing
            found = False
        if not found:
            return name
    return None


def _endpoint(env: Mapping[str, str]) -> str | None:
    for name, suffix in (("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""), ("OTEL_EXPORTER_OTLP_ENDPOINT", "/v1/traces")):
        value = (env.get(name) or "").strip()
        if not value:
            continue
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{name}: must be an http(s) URL with a host, e.g. http://otel-collector:4318")
        return value.rstrip("/") + suffix if suffix else value
    return None


def _exporters(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = [e.strip().lower() for e in (env.get("OTEL_TRACES_EXPORTER") or "otlp").split(",") if e.strip()]
    if raw == ["none"]:
        return ()
    unknown = [e for e in raw if e not in EXPORTERS]
    if unknown or not raw:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER: {', '.join(unknown) or 'empty'}: livetoken exports otlp, console or none"
        )
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = (env.get(name) or "").strip()
        if protocol and protocol != "http/protobuf":
            raise ConfigError(f"{name}: livetoken[otel] exports OTLP over http/protobuf only (a collector's port 4318)")
        if protocol:
            break
    return tuple(dict.fromkeys(raw))


def _sampler(env: Mapping[str, str]) -> tuple[str, float]:
    sampler = (env.get("OTEL_TRACES_SAMPLER") or "parentbased_always_on").strip().lower()
    if sampler not in SAMPLERS:
        raise ConfigError(f"OTEL_TRACES_SAMPLER: {sampler!r} is not one of {', '.join(SAMPLERS)}")
    raw = (env.get("OTEL_TRACES_SAMPLER_ARG") or "").strip()
    if not raw or not sampler.endswith("traceidratio"):
        return sampler, 1.0
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError("OTEL_TRACES_SAMPLER_ARG: must be a ratio from 0 to 1 for the traceidratio samplers")
    return sampler, ratio


def tracing_config(env: Mapping[str, str], *, extra: tuple[str, ...] = EXTRA_MODULES) -> TracingConfig:
    """Read the `OTEL_*` variables livetoken acts on; raises ConfigError naming a bad one.

    `extra` are the modules tracing needs (the `livetoken[otel]` extra); without one of them tracing is off.
    """
    endpoint = _endpoint(env)
    asked = endpoint is not None or bool((env.get("OTEL_TRACES_EXPORTER") or "").strip())
    if not asked:
        return TracingConfig()
    exporters = _exporters(env)
    sampler, ratio = _sampler(env)
    if _truthy(env.get("OTEL_SDK_DISABLED")):
        return TracingConfig()
    if not exporters:  # OTEL_TRACES_EXPORTER=none
        return TracingConfig()
    missing = _extra_missing(extra)
    if missing is not None:
        return TracingConfig(note=f"OTEL_* asks for tracing but {missing} is missing: pip install 'livetoken[otel]'")
    return TracingConfig(
        enabled=True,
        exporters=exporters,
        sampler=sampler,
        sampler_ratio=ratio,
        endpoint=(endpoint or "http://localhost:4318/v1/traces") if "otlp" in exporters else None,
        propagators_set=bool((env.get("OTEL_PROPAGATORS") or "").strip()),
    )
