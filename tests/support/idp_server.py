"""A local identity provider's two documents over real HTTP: its OpenID discovery document and its JWKS.

`document` starts as what a provider at this address publishes (issuer = `issuer`, jwks_uri = `jwks_url`); tests
change it, the keys, or take either path down (`down`: a set of paths answered 503).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.jwks_server import send_json

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks.json"


class IdPServer:
    """A provider at http://127.0.0.1:PORT (a loopback address: discovery allows plain http there)."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.paths: list[str] = []
        self.down: set[str] = set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path)
                bodies = {DISCOVERY_PATH: owner.document, JWKS_PATH: owner.jwks}
                if self.path in owner.down or self.path not in bodies:
                    self.send_response(503 if self.path in owner.down else 404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                send_json(self, json.dumps(bodies[self.path]).encode())

            def log_message(self, *_args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.jwks_url = self.issuer + JWKS_PATH
        self.document: dict[str, Any] = {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()
