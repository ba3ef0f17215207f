"""Closing the minter closes its sockets to Google before it returns: a TLS close waits for the server's
close_notify, and a socket still open when the event loop ends is an unclosed transport (a ResourceWarning that
surfaced in whichever test the garbage collector happened to run in)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from service.config import ProfileConfig, Secret, UpstreamConfig
from service.emulator.certs import ensure_certificates
from service.metrics import Metrics
from service.upstream import TokenMinter, http1
from service.upstream.http1 import UpstreamConnections
from service.upstream.sdk import upstream_tls

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def _sockets(pool: UpstreamConnections) -> list[Any]:
    """The sockets under the pool's idle connections (asyncio's TransportSocket: fileno() is -1 once closed)."""
    return [c.transport.get_extra_info("socket") for c in pool._idle if c.transport is not None]


async def test_closing_the_minter_closes_every_socket_to_google_before_it_returns(emulator: Any) -> None:
    """Four warm connections and a mint on one of them: when `aclose()` returns, all four sockets are closed
    (the emulator answered each close_notify), none left for the garbage collector."""
    minter = TokenMinter(
        api_key=Secret(emulator.api_key),
        base_url=emulator.base_url,
        ca_file=emulator.ca_file,
        profiles={"voice": ProfileConfig(model="gemini-3.8-live")},
        upstream=UpstreamConfig(),
        metrics=Metrics(),
    )
    assert await minter.warm(4) == 4
    await minter.mint("voice", None)
    sockets = _sockets(minter._connections)
    await minter.aclose()
    assert len(sockets) == 4
    assert [s.fileno() for s in sockets] == [-1] * 4


@contextmanager
def _tls_server_deaf_to_close_notify(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A TLS server that answers one request per connection with 200 and then never reads again, so a client's
    close_notify is never answered. Yields (its URL, its CA file)."""
    ca_file, cert_file, key_file = ensure_certificates(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    held: list[ssl.SSLSocket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            raw.settimeout(5)
            tls = context.wrap_socket(raw, server_side=True)
            data = b""
            while b"\r\n\r\n" not in data:
                data += tls.recv(65536)
            tls.sendall(OK)
            held.append(tls)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}/v1alpha/auth_tokens", str(ca_file)
    finally:
        stop.set()
        thread.join(timeout=5)
        for tls in held:
            tls.close()
        listener.close()


async def test_a_server_that_never_answers_close_notify_does_not_keep_the_socket_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server never answers the TLS close: `aclose()` waits the grace (0.3 s here), then cuts the connection;
    it returns with the socket closed, not waiting out asyncio's 30 s TLS shutdown timeout."""
    monkeypatch.setattr(http1, "CLOSE_GRACE_SECONDS", 0.3)
    with _tls_server_deaf_to_close_notify(tmp_path) as (url, ca_file):
        pool = UpstreamConnections(url, upstream_tls(ca_file), 60.0)
        answer = await pool.request(pool.head("POST", {}), b"{}", 5.0)
        sockets = _sockets(pool)
        started = time.monotonic()
        await pool.aclose()
        elapsed = time.monotonic() - started
    assert answer.status == 200
    assert len(sockets) == 1
    assert sockets[0].fileno() == -1
    assert 0.3 <= elapsed < 1.3
