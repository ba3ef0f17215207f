"""Run an ASGI app under the chosen server with graceful shutdown (see README: Performance)."""

from __future__ import annotations

import signal
from typing import Any

import uvicorn

from service.app import create_app
from service.config import Settings


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
    # uvicorn re-raises the signal it shut down on; a no-op handler lets the caller's clean-up
    # (closing the dev emulator child, say) run and the process exit 0 after a graceful stop.
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run()
    return 0 if server.started else 1


def run_server(settings: Settings, host: str, port: int) -> int:
    """Serve the livetoken app for `settings`."""
    return serve_app(create_app(settings), host, port, float(settings.file.server.shutdown_grace))
