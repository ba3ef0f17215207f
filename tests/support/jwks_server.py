"""A real local JWKS endpoint (threaded http.server) whose behaviour tests can change: keys, delay, outage."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def send_json(handler: BaseHTTPRequestHandler, body: bytes) -> None:
    """A 200 application/json answer with its length."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class JWKSServer:
    """Serves `self.jwks` at /jwks.json (or exactly `self.raw`, for bodies json.dumps can't write); `mode` = ok |
    down (500) | garbage | huge."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.raw: bytes | None = None
        self.mode = "ok"
        self.delay = 0.0
        self.hits = 0
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                owner.paths.append(self.path)
                if owner.delay:
                    time.sleep(owner.delay)
                if owner.mode == "down":
                    self.send_response(500)
                    self.end_headers()
                    return
                if owner.mode == "garbage":
                    body = b"<html>not json</html>"
                elif owner.mode == "huge":
                    body = b'{"keys": [' + b'{"kty": "RSA"},' * 100_000 + b"{}]}"
                else:
                    body = owner.raw if owner.raw is not None else json.dumps(owner.jwks).encode()
                send_json(self, body)

            def log_message(self, *_args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()
