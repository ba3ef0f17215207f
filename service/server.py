"""Run an ASGI app under the chosen server with graceful shutdown (see README: Performance)."""

from __future__ import annotations

import gc
import signal
from typing import Any

import uvicorn

from service.app import create_app
from service.config import Settings

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


def serve_app(app: Any, host: str, port: int, grace: float) -> int:
    """Serve until SIGINT/SIGTERM; in-flight requests get `grace` seconds to finish."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
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
    return 0 if server.started else 1


def run_server(settings: Settings, host: str, port: int) -> int:
    """Serve the livetoken app for `settings`."""
    return serve_app(create_app(settings), host, port, float(settings.file.server.shutdown_grace))
