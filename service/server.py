"""Run an ASGI app under the chosen server with graceful shutdown (see README: Performance)."""

from __future__ import annotations

import gc
import signal
from typing import Any

import structlog
import uvicorn

from service.app import create_app, package_version
from service.config import Settings
from service.http_protocol import ConnectionGuard, ConnectionLimits, bounded_protocol
from service.logging import report_suppressed
from service.metrics import Metrics
from service.tracing import TracingConfig, open_tracing

# Young-generation collections every 10k allocations rather than 700: a token request allocates a few thousand
# objects, and at the default the collector ran every few requests (about a tenth of a token's CPU).
GC_THRESHOLDS = (10_000, 20, 20)


def tune_gc() -> None:
    """Keep garbage collection off the latency tail of a long-running server.

    Everything alive once the app is built (modules, the SDK's pydantic models, routes: ~140k objects) is
    moved out of the collector's sight with gc.freeze(), so a full collection scans only what requests
    created since; without it each full collection took 60-100 ms and stalled every request in flight
    (make bench: p99 with a slow upstream). Objects are still freed by reference counting as usual.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve_app(
    app: Any,
    host: str,
    port: int,
    grace: float,
    *,
    limits: ConnectionLimits | None = None,
    metrics: Metrics | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM; in-flight requests get `grace` seconds to finish.

    Connections are held to `limits` (see service/http_protocol.py), counted in `metrics`.
    """
    limits = limits or ConnectionLimits()
    guard = ConnectionGuard(limits, metrics or Metrics(version=package_version()))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=bounded_protocol(guard),
        # uvicorn annotates whole seconds but only ever hands the value to loop.call_later, which takes a float.
        timeout_keep_alive=limits.keepalive_timeout,  # type: ignore[arg-type]
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(grace)),
        server_header=False,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    tune_gc()
    # uvicorn re-raises the signal it shut down on; a no-op handler lets the caller's clean-up
    # (closing the dev emulator child, say) run and the process exit 0 after a graceful stop.
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run()
    guard.flush_log()
    report_suppressed()
    return 0 if server.started else 1


def run_server(settings: Settings, host: str, port: int, tracing_config: TracingConfig | None = None) -> int:
    """Serve the livetoken app for `settings`, traced as `tracing_config` (from `OTEL_*`) says."""
    server = settings.file.server
    metrics = Metrics(version=package_version())
    tracing_config = tracing_config or TracingConfig()
    if tracing_config.note is not None:
        structlog.get_logger("livetoken").warning("tracing_unavailable", detail=tracing_config.note)
    tracing = open_tracing(tracing_config, version=package_version())
    limits = ConnectionLimits(
        max_connections=server.max_connections,
        header_timeout=float(server.header_timeout),
        keepalive_timeout=float(server.keepalive_timeout),
        max_in_flight=server.max_in_flight,
    )
    try:
        app = create_app(settings, metrics, tracing)
        return serve_app(app, host, port, float(server.shutdown_grace), limits=limits, metrics=metrics)
    finally:
        tracing.shutdown()  # export the spans still buffered
