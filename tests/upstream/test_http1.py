"""The minter's own HTTP/1.1 connections against a scripted server: what goes out, how answers are read, when a
connection is reused and when it is closed."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from service.upstream.http1 import MAX_ANSWER_BYTES, UpstreamAnswer, UpstreamConnectionError, UpstreamConnections
from tests.support.waiting import until

_BOMB = gzip.compress(b"{" + b" " * (8 * MAX_ANSWER_BYTES) + b"}")  # 8 MiB of JSON in a few kB
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class Scripted:
    """A plain-HTTP server answering each request with the next of `answers` (bytes, or None: hang), hanging up
    after each answer if `hang_up`."""

    answers: list[bytes | None]
    hang_up: bool = False
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    closed: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.startswith(b"Content-Length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if answer is None:
                    await reader.read()  # hang until the client hangs up
                    return
                writer.write(answer)
                await writer.drain()
                if self.hang_up:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed += 1
            writer.close()


async def _serve(script: Scripted) -> asyncio.Server:
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    script.port = server.sockets[0].getsockname()[1]
    return server


def _closed(script: Scripted, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return script.closed == count

    return check


def _pool(script: Scripted, idle_seconds: float = 60.0) -> UpstreamConnections:
    return UpstreamConnections(f"http://127.0.0.1:{script.port}/v1alpha/auth_tokens", None, idle_seconds)


async def test_the_request_is_the_head_and_body_aiohttp_would_send_and_a_gzip_chunked_answer_is_read() -> None:
    """The bytes on the wire: request line, Host, the given headers in order, Accept, Accept-Encoding,
    Content-Length, body. A chunked, gzip-encoded answer comes back whole and decoded, with its headers."""
    payload = b'{"name":"auth_tokens/abc"}'
    packed = gzip.compress(payload)
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Encoding: gzip\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (10, packed[:10])
        + b"%x\r\n%s\r\n" % (len(packed) - 10, packed[10:])
        + b"0\r\n\r\n"
    )
    script = Scripted([answer])
    server = await _serve(script)
    pool = _pool(script)
    try:
        head = pool.head("POST", {"Content-Type": "application/json", "x-goog-api-key": "k-1"})
        got = await pool.request(head, b'{"a":1}', 5.0)
    finally:
        await pool.aclose()
        server.close()
    assert script.requests == [
        b"POST /v1alpha/auth_tokens HTTP/1.1\r\n"
        + f"Host: 127.0.0.1:{script.port}\r\n".encode()
        + b"Content-Type: application/json\r\nx-goog-api-key: k-1\r\nAccept: */*\r\n"
        b"Accept-Encoding: gzip, deflate\r\nContent-Length: 7\r\n\r\n"
        b'{"a":1}'
    ]
    assert got == UpstreamAnswer(
        200,
        "OK",
        {
            "content-type": "application/json; charset=UTF-8",
            "content-encoding": "gzip",
            "transfer-encoding": "chunked",
        },
        payload,
    )
    assert got.is_json


async def test_a_kept_alive_connection_is_reused_and_one_the_server_closes_is_not() -> None:
    """Two answers with keep-alive: one connection. An answer with `Connection: close`: the next request opens a
    new one (and is answered there)."""
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    script = Scripted([OK, closing, OK])
    server = await _serve(script)
    pool = _pool(script)
    try:
        head = pool.head("POST", {})
        statuses = [(await pool.request(head, b"{}", 5.0)).status for _ in range(3)]
    finally:
        await pool.aclose()
        server.close()
    assert statuses == [200, 200, 200]
    assert script.connections == 2
    assert len(script.requests) == 3


@pytest.mark.parametrize("how", ["within", "cancelled"])
async def test_a_request_timed_out_or_cancelled_mid_answer_closes_its_connection(how: str) -> None:
    """The server stays silent: the request's own deadline (`within`), or a cancellation from outside, ends it at
    0.2 s; that connection is closed (the server sees it go) and the next request, on a new connection, gets its
    own answer rather than the late one."""
    script = Scripted([None, OK])
    server = await _serve(script)
    pool = _pool(script)
    loop = asyncio.get_running_loop()
    try:
        head = pool.head("POST", {})
        began = loop.time()
        if how == "within":
            with pytest.raises(TimeoutError):
                await pool.request(head, b"{}", 0.2)
        else:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await pool.request(head, b"{}", 5.0)
        waited = loop.time() - began
        await until(_closed(script, 1), "the server saw the connection close")
        answer = await pool.request(head, b"{}", 5.0)
    finally:
        await pool.aclose()
        server.close()
    assert 0.2 <= waited < 1.0
    assert (answer.status, answer.body) == (200, b"{}")
    assert script.connections == 2


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", "not valid HTTP/1.1"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_ANSWER_BYTES + 1), "larger than any answer"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(_BOMB), _BOMB),
            "larger than any answer",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\n{}", "encoding that was not asked"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "closed the connection before answering"),
    ],
    ids=["not-http", "too-large", "gzip-bomb", "unasked-encoding", "cut-short"],
)
async def test_an_answer_that_is_not_a_whole_http_answer_is_a_connection_error(answer: bytes, message: str) -> None:
    """Garbage, an answer larger than any token answer, an encoding we did not offer, a body cut short by the
    server hanging up: UpstreamConnectionError (a connection failure, retried by the minter), never a hang, and
    the connection is not kept."""
    if answer.endswith(b"%d\r\n\r\n" % (MAX_ANSWER_BYTES + 1)):
        answer += b"x" * (MAX_ANSWER_BYTES + 1)
    script = Scripted([answer], hang_up=True)
    server = await _serve(script)
    pool = _pool(script)
    try:
        with pytest.raises(UpstreamConnectionError, match=message):
            async with asyncio.timeout(5):
                await pool.request(pool.head("POST", {}), b"{}", 5.0)
    finally:
        await pool.aclose()
        server.close()
    assert pool.idle == 0


async def test_idle_connections_are_closed_after_idle_seconds() -> None:
    """A connection left idle longer than `idle_seconds` is closed by the client (the server sees it go), before a
    server could drop it under a request."""
    script = Scripted([OK])
    server = await _serve(script)
    pool = _pool(script, idle_seconds=0.2)
    try:
        await pool.request(pool.head("POST", {}), b"{}", 5.0)
        assert pool.idle == 1
        await until(_closed(script, 1), "the server saw the connection close")
        assert pool.idle == 0
    finally:
        await pool.aclose()
        server.close()


async def test_an_early_hints_answer_is_not_the_answer() -> None:
    """`103 Early Hints` before the 200 (a CDN may send one): the request gets the 200 and its body, and the
    connection, still in step, carries the next request to its own answer."""
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
    second = b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{"n": 2}'
    script = Scripted([hints + b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{"n": 1}', second])
    server = await _serve(script)
    pool = _pool(script)
    try:
        head = pool.head("POST", {})
        answers = [await pool.request(head, b"{}", 5.0) for _ in range(2)]
    finally:
        await pool.aclose()
        server.close()
    assert [(a.status, a.reason, a.body) for a in answers] == [(200, "OK", b'{"n": 1}'), (200, "OK", b'{"n": 2}')]
    assert script.connections == 1


async def test_an_answer_without_a_length_ends_with_the_connection() -> None:
    """No Content-Length, not chunked (a proxy's error page, say): the body is what came before the server hung
    up, and that connection is not reused."""
    script = Scripted([b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\n\r\n<h1>denied</h1>"], hang_up=True)
    server = await _serve(script)
    pool = _pool(script)
    try:
        answer = await pool.request(pool.head("POST", {}), b"{}", 5.0)
    finally:
        await pool.aclose()
        server.close()
    assert (answer.status, answer.reason, answer.body, answer.is_json) == (403, "Forbidden", b"<h1>denied</h1>", False)
    assert pool.idle == 0


def test_a_header_value_with_a_line_break_is_refused_without_echoing_it() -> None:
    """An API key with a newline would split the request: refused when the head is built, naming the header and
    not its value."""
    pool = UpstreamConnections("https://generativelanguage.googleapis.com/v1alpha/auth_tokens", None, 60.0)
    with pytest.raises(ValueError, match="'x-goog-api-key' header") as info:
        pool.head("POST", {"x-goog-api-key": "AIza-secret\r\nX-Evil: 1"})
    assert "AIza-secret" not in str(info.value)
    assert pool.host_header == "generativelanguage.googleapis.com"  # the default port is not written


@asynccontextmanager
async def _one_off_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A server running `handler` per connection; on exit every handler has finished and closed its socket (a
    handler left running past the test's loop warns about an unclosed transport in a later test)."""
    handlers: list[asyncio.Task[None]] = []

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def start(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.create_task(run(reader, writer)))

    server = await asyncio.start_server(start, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await asyncio.wait_for(asyncio.gather(*handlers), 5)
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.startswith(b"Content-Length:"))
    return head + await reader.readexactly(length)


async def test_an_idle_connection_that_receives_bytes_is_discarded() -> None:
    """Half of a late or unsolicited answer arrives on a pooled connection: that connection is never used again,
    and the next request gets its own answer on a new one (not the stray bytes with its answer glued on)."""
    stray = b'HTTP/1.1 200 OK\r\nContent-Length: 60\r\n\r\n{"stray":'  # half an answer: the parser is mid-message
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await _read_request(reader)
        writer.write(OK)
        if len(connections) == 1:
            writer.write(stray)  # bytes after the answer, while the connection sits idle
        await writer.drain()
        await reader.read()

    async with _one_off_server(handle) as port:
        pool = UpstreamConnections(f"http://127.0.0.1:{port}/v1alpha/auth_tokens", None, 60.0)
        try:
            head = pool.head("POST", {})
            first = await pool.request(head, b"{}", 5.0)
            await until(lambda: _async_value(pool.idle == 0), "the pooled connection is dropped")
            second = await pool.request(head, b"{}", 5.0)
        finally:
            await pool.aclose()
    assert (first.body, second.body) == (b"{}", b"{}")
    assert len(connections) == 2


async def _async_value(value: bool) -> bool:
    return value


async def test_an_answer_without_a_length_cut_by_a_reset_is_an_error() -> None:
    """No Content-Length and the connection is reset (not closed cleanly) mid-body: the body may be cut short, so
    it is a connection error, not an answer."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"name": "auth_tok')
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        writer.transport.abort()

    async with _one_off_server(handle) as port:
        pool = UpstreamConnections(f"http://127.0.0.1:{port}/v1alpha/auth_tokens", None, 60.0)
        try:
            with pytest.raises(UpstreamConnectionError, match="closed the connection before answering"):
                await pool.request(pool.head("POST", {}), b"{}", 5.0)
        finally:
            await pool.aclose()


async def test_a_pooled_connection_found_closed_is_retried_at_once_on_a_new_one() -> None:
    """The server closed a pooled connection as the request went out (no byte of answer): the same request goes
    out once more on a new connection, inside its deadline, and its answer is the caller's."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await _read_request(reader)
        writer.write(OK)
        await writer.drain()
        if len(connections) == 1:
            await _read_request(reader)  # the second request arrives on the pooled connection: hang up on it
            return
        await reader.read()

    async with _one_off_server(handle) as port:
        pool = UpstreamConnections(f"http://127.0.0.1:{port}/v1alpha/auth_tokens", None, 60.0)
        try:
            head = pool.head("POST", {})
            first = await pool.request(head, b"{}", 5.0)
            second = await pool.request(head, b"{}", 5.0)
        finally:
            await pool.aclose()
    assert (first.status, second.status, second.body) == (200, 200, b"{}")
    assert (len(connections), pool.stale_retries) == (2, 1)


async def test_addresses_are_cached_and_the_other_family_is_tried() -> None:
    """The host resolves to an IPv6 address nobody listens on and an IPv4 one that answers: the request gets
    through on IPv4; two connections made within the DNS cache's lifetime cost one lookup."""
    script = Scripted([OK, OK], hang_up=True)
    server = await _serve(script)
    loop = asyncio.get_running_loop()
    lookups: list[str] = []

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        lookups.append(host)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    pool = UpstreamConnections(f"http://upstream.test:{script.port}/v1alpha/auth_tokens", None, 60.0)
    original = loop.getaddrinfo
    loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign,assignment]
    try:
        head = pool.head("POST", {})
        answers = [await pool.request(head, b"{}", 5.0) for _ in range(2)]
    finally:
        loop.getaddrinfo = original  # type: ignore[method-assign]
        await pool.aclose()
        server.close()
    assert [a.status for a in answers] == [200, 200]
    assert script.connections == 2
    assert lookups == ["upstream.test"]
    assert script.requests[0].split(b"\r\n")[1] == f"Host: upstream.test:{script.port}".encode()


def test_trace_headers_that_would_break_the_head_are_left_out_and_logged() -> None:
    """A propagator's header holding CR, LF or NUL (or a colon in its name) never joins the request head."""
    with capture_logs() as logs:
        extra = UpstreamConnections.extra_lines(
            {
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "baggage": "user=1\r\nX-Evil: 1",
                "bad:name": "x",
            }
        )
    assert extra == b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
    assert [(e["event"], e["header"]) for e in logs] == [
        ("upstream_header_dropped", "baggage"),
        ("upstream_header_dropped", "bad"),
    ]
