"""The compose file's tracing is wired as the service reads it: OTEL_* to the collector, the collector to Jaeger,
Prometheus keeping exemplars, and the image carrying the extra."""

from __future__ import annotations

from typing import Any

import yaml

from service.tracing import tracing_config
from tests.support.processes import ROOT


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_sends_the_services_spans_to_the_collector_and_on_to_jaeger() -> None:
    """The service's OTEL_* switch tracing on towards the collector's OTLP/HTTP receiver; the collector's pipeline
    receives OTLP and exports to the Jaeger service, whose UI port is published."""
    services = _compose()["services"]
    env = {k: str(v) for k, v in services["livetoken"]["environment"].items() if k.startswith("OTEL_")}
    config = tracing_config(env)
    assert config.enabled
    assert config.endpoint == "http://otel-collector:4318/v1/traces"
    assert "otel-collector" in services["livetoken"]["depends_on"]

    collector = services["otel-collector"]
    mount = next(v for v in collector["volumes"] if v.startswith("./deploy/otel/"))
    source, target = mount.split(":")[:2]
    assert f"--config={target}" in collector["command"]
    pipeline_config = yaml.safe_load((ROOT / source).read_text())
    assert pipeline_config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    traces = pipeline_config["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    jaeger_exporter = pipeline_config["exporters"][next(e for e in traces["exporters"] if e.startswith("otlp/"))]
    assert jaeger_exporter["endpoint"] == "jaeger:4317"
    assert "16686:16686" in services["jaeger"]["ports"]


def test_prometheus_keeps_exemplars_and_the_image_has_the_extra() -> None:
    """Prometheus stores exemplars (the trace ids on latency buckets); the image installs livetoken[otel], so
    tracing is a matter of setting OTEL_* at deploy time."""
    prometheus = _compose()["services"]["prometheus"]
    assert "--enable-feature=exemplar-storage" in prometheus["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert "'.[otel]'" in (ROOT / "Dockerfile").read_text()
