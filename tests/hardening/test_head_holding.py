"""One send() per answer: the response head waits for the body's first bytes, nothing else waits, order holds."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from service.http_protocol import HeadHoldingTransport
from tests.support.processes import serving
from tests.support.service import service_env, write_config


class Recorder:
    """A transport that records each write (one system call each on a real socket) and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"extra:{name}"


HEAD = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n"


def test_head_and_body_leave_in_one_write_and_anything_else_passes_at_once() -> None:
    """A head is held and leaves with the body; a later chunk goes alone; `100 Continue` (the client waits
    for it) and a body-looking write without a head before it are never held; other calls reach the socket."""
    sent = Recorder()
    held = HeadHoldingTransport(sent)  # type: ignore[arg-type]  # a recording stand-in for asyncio's transport
    held.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert sent.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    held.write(HEAD)
    assert sent.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    held.write(b"{}")
    held.write(b"more")
    assert sent.writes[1:] == [HEAD + b"{}", b"more"]
    assert held.get_extra_info("peername") == "extra:peername"


def test_a_body_write_that_reads_like_a_head_is_sent_at_once() -> None:
    """What is held is decided by position: after the head and the first body bytes, a chunk that starts with
    `HTTP/1.1 ` and ends in a blank line (a body that echoes HTTP, say) leaves at once instead of waiting for a
    write that never comes on a keep-alive connection."""
    sent = Recorder()
    held = HeadHoldingTransport(sent)  # type: ignore[arg-type]  # a recording stand-in for asyncio's transport
    looks_like_a_head = b"HTTP/1.1 200 OK\r\nx: y\r\n\r\n"
    held.write(HEAD)
    held.write(b"{")
    held.write(looks_like_a_head)
    assert sent.writes == [HEAD + b"{", looks_like_a_head]
    first_write_not_a_head = Recorder()
    other = HeadHoldingTransport(first_write_not_a_head)  # type: ignore[arg-type]  # a recording stand-in
    other.write(b"partial")
    other.write(looks_like_a_head)
    assert first_write_not_a_head.writes == [b"partial", looks_like_a_head]


def test_closing_sends_a_held_head_first() -> None:
    """An answer cut short (the app failed after starting it) still shows its head, then the connection closes."""
    sent = Recorder()
    held = HeadHoldingTransport(sent)  # type: ignore[arg-type]  # a recording stand-in for asyncio's transport
    held.write(HEAD)
    held.close()
    assert sent.writes == [HEAD]
    assert sent.closed


def _one_answer(sock: socket.socket, method: str) -> tuple[bytes, bytes]:
    """Status line and body of the next answer on `sock` (a HEAD answer has no body, whatever its length says)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = int(next(line for line in lines if line.lower().startswith(b"content-length:")).split(b":")[1])
    while method != "HEAD" and len(body) < length:
        body += sock.recv(65536)
    return lines[0], body


def test_answers_on_a_real_server_are_whole_for_get_head_and_keep_alive(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """Through the service's own server, three requests on one keep-alive connection: a GET, a HEAD (405: its
    answer has no body to wait for, and must not hang) and a GET again each get exactly their answer."""
    with serving(write_config(tmp_path), service_env(emulator, redis_url)) as (_proc, url):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            answers = []
            for method in ("GET", "HEAD", "GET"):
                sock.sendall(f"{method} /healthz HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                answers.append(_one_answer(sock, method))
    assert answers[0] == (b"HTTP/1.1 200 OK", b'{"status":"ok"}')
    assert answers[1] == (b"HTTP/1.1 405 Method Not Allowed", b"")
    assert answers[2] == answers[0]
