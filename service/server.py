"""Run the app under an ASGI server with graceful shutdown."""

from __future__ import annotations

import signal

import uvicorn

from service.app import create_app
from service.config import Settings


def run_server(settings: Settings, host: str, port: int) -> int:
    """Serve until SIGINT/SIGTERM; in-flight requests get `server.shutdown_grace` seconds to finish."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.file.server.shutdown_grace) or 1,
        server_header=False,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal it shut down on; a no-op handler lets the caller's clean-up
    # (closing the dev emulator child, say) run and the process exit 0 after a graceful stop.
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run()
    return 0 if server.started else 1
