"""A traced app: the real service with the OpenTelemetry SDK's in-memory exporter, real Redis, the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.app import create_app
from service.config import Settings
from service.metrics import Metrics
from service.tracing import Tracing, TracingConfig, open_tracing
from tests.support.service import build_settings, service_env, write_config


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Every finished span, synchronously."""
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Iterator[Tracing]:
    """Tracing as `OTEL_EXPORTER_OTLP_ENDPOINT` alone switches it on (default sampler), into `exporter`."""
    traced = open_tracing(TracingConfig(enabled=True), exporter=exporter)
    yield traced
    traced.shutdown()


@pytest.fixture
def settings(tmp_path: Path, emulator: Any, redis_url: str) -> Settings:
    """The test service's settings: Redis limiter, the emulator as Google."""
    return build_settings(write_config(tmp_path), service_env(emulator, redis_url))


@asynccontextmanager
async def traced_app(
    settings: Settings, tracing: Tracing, metrics: Metrics | None = None
) -> AsyncIterator[AsyncTestClient[Any]]:
    """The app with its lifespan running, traced, behind an in-process HTTP client."""
    app = create_app(settings, metrics, tracing)
    async with AsyncTestClient(app=app, base_url="http://livetoken.test") as client:
        yield client
