"""Serve bench/baseline_app.py under one of the candidate ASGI servers.

`uvicorn` is the yardstick issue #16 names: stock uvicorn with uvloop and httptools (the process's garbage collector
tuned as the service's is). `service` is exactly how the service is served (service.server.serve_app: the same
uvicorn with the service's own connection handling, service/http_protocol.py); the others are the alternatives
the choice was made against.
"""

from __future__ import annotations

import sys

import uvicorn

from bench.baseline_app import app
from service.server import serve_app, tune_gc

SERVERS = ("uvicorn", "service", "uvicorn-asyncio-h11", "granian")


def main(port: int, server: str) -> None:
    """Serve until terminated."""
    if server == "uvicorn":  # the yardstick: stock uvicorn with uvloop and httptools (the process tuned as ours)
        tune_gc()
        uvicorn.run(
            app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_config=None, access_log=False
        )
    elif server == "service":
        serve_app(app, "127.0.0.1", port, grace=1)
    elif server == "uvicorn-asyncio-h11":
        uvicorn.run(app, host="127.0.0.1", port=port, loop="asyncio", http="h11", log_config=None, access_log=False)
    elif server == "granian":
        from granian.constants import Interfaces, Loops
        from granian.server import Server

        Server(
            "bench.baseline_app:app",
            address="127.0.0.1",
            port=port,
            interface=Interfaces.ASGI,
            workers=1,
            runtime_threads=1,
            loop=Loops.uvloop,
            log_enabled=False,
        ).serve()
    else:
        raise SystemExit(f"unknown server {server!r}; one of {', '.join(SERVERS)}")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "service")
