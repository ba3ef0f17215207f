"""Tracing is configured by OpenTelemetry's own variables only, is off unless they ask for it, and a bad value
stops the service at start-up with one line naming the variable."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from service.config import ConfigError
from service.tracing import TracingConfig, tracing_config
from tests.support.processes import livetoken_exe
from tests.support.service import write_config

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"}


def test_off_without_otel_variables() -> None:
    """No OTEL_* variable (or only ones that do not ask for export): tracing is off, quietly."""
    assert tracing_config({}) == TracingConfig()
    assert tracing_config({"OTEL_SERVICE_NAME": "livetoken-eu", "OTEL_TRACES_SAMPLER": "always_on"}).enabled is False


def test_an_otlp_endpoint_switches_it_on() -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT alone: OTLP/HTTP to its /v1/traces, the SDK's default sampler."""
    config = tracing_config(ENDPOINT)
    assert config.enabled
    assert config.exporters == ("otlp",)
    assert config.endpoint == "http://otel-collector:4318/v1/traces"
    assert config.sampler == "parentbased_always_on"
    assert config.note is None


def test_the_traces_endpoint_is_used_as_given_and_the_exporter_variable_alone_switches_it_on() -> None:
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the full URL; OTEL_TRACES_EXPORTER=console needs no endpoint."""
    traces = tracing_config({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector.example/otlp/traces"})
    assert traces.endpoint == "https://collector.example/otlp/traces"
    console = tracing_config({"OTEL_TRACES_EXPORTER": "console"})
    assert console.enabled
    assert console.exporters == ("console",)
    assert console.endpoint is None


@pytest.mark.parametrize(
    "env",
    [
        {**ENDPOINT, "OTEL_SDK_DISABLED": "true"},
        {**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"},
    ],
)
def test_the_sdk_switches_off_as_opentelemetry_says(env: dict[str, str]) -> None:
    """OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none turn tracing off, endpoint or not."""
    assert tracing_config(env).enabled is False


def test_without_the_extra_it_is_off_with_a_note_naming_what_is_missing() -> None:
    """Configured but without `livetoken[otel]` installed: off, and the start-up warning says what to install."""
    config = tracing_config(ENDPOINT, extra=("opentelemetry.sdk", "opentelemetry_not_installed_here"))
    assert config.enabled is False
    assert config.note is not None
    assert "opentelemetry_not_installed_here" in config.note
    assert "pip install 'livetoken[otel]'" in config.note


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "otel-collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({**ENDPOINT, "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        (
            {**ENDPOINT, "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
            "OTEL_TRACES_SAMPLER_ARG",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(env: dict[str, str], named: str) -> None:
    """Values livetoken acts on are checked; the error starts with the variable's name."""
    with pytest.raises(ConfigError) as refused:
        tracing_config(env)
    assert str(refused.value).startswith(f"{named}: ")


def test_sampler_ratio_and_propagators_are_read() -> None:
    """A traceidratio sampler keeps its ratio; OTEL_PROPAGATORS set means the SDK's propagators are used."""
    config = tracing_config(
        {**ENDPOINT, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
    )
    assert (config.sampler, config.sampler_ratio, config.propagators_set) == ("parentbased_traceidratio", 0.25, False)
    assert tracing_config({**ENDPOINT, "OTEL_PROPAGATORS": "tracecontext,baggage"}).propagators_set


def test_check_config_and_serve_refuse_a_bad_otel_variable_in_one_line(tmp_path: Path) -> None:
    """`livetoken check-config` and `livetoken serve` exit 2 with one line naming the variable, before starting."""
    config = write_config(tmp_path)
    env = {
        "PATH": "/usr/bin:/bin",
        "TEST_ISSUER_SECRET": "test-issuer-secret-that-is-long-enough-0123456789",
        "LIVETOKEN_GEMINI_API_KEY": "unused-key",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    for args in (["check-config", str(config)], ["serve", "--config", str(config), "--port", "1"]):
        done = subprocess.run(
            [livetoken_exe(), *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines() == [
            "livetoken: configuration error: OTEL_EXPORTER_OTLP_PROTOCOL: livetoken[otel] exports OTLP over "
            "http/protobuf only (a collector's port 4318)"
        ]
