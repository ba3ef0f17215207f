"""Serve bench/baseline_app.py exactly as the service is served (service.server.serve_app)."""

from __future__ import annotations

import sys

from bench.baseline_app import app
from service.server import serve_app

if __name__ == "__main__":
    serve_app(app, "127.0.0.1", int(sys.argv[1]), grace=1)
