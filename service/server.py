"""Run the app under an ASGI server with graceful shutdown."""

from __future__ import annotations

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
    server.run()
    return 0 if server.started else 1
