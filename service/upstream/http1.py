"""The minter's HTTP/1.1 connections to Google: one POST at a time on each kept-alive TLS connection.

The SDK builds the request (URL, headers, body: sdk.py) and judges the answer (its APIError classes); this module
only carries the bytes. It replaced aiohttp under the SDK on the hot path: aiohttp's request machinery (request
and response objects, a payload registry, stream readers, per-request timers, cookie and trace hooks) cost
about a fifth of an issued token's CPU, for one small POST whose shape never changes. Here a request is one
pre-encoded head plus the body, written with one `send()`; httptools (the C parser uvicorn uses) reads the
answer.

On the wire Google sees what aiohttp sent under the SDK, header for header (a test compares with the public
`auth_tokens.create` call): `Host`, the SDK's headers in its order, `Accept: */*`,
`Accept-Encoding: gzip, deflate` (a gzip or deflate answer is decoded here), `Content-Length`.

A connection is reused only after a complete answer that keeps it alive; one that fails, is cancelled mid-request
(the attempt's timeout) or answers `Connection: close` is closed. Idle connections are closed after
`idle_seconds`, well before Google's front ends drop them. Closing the pool waits until its sockets are closed: a
TLS close waits for the server's close_notify, and a socket left open when the event loop ends is leaked.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import socket
import ssl
import zlib
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

import httptools

from service.config.egress import Proxy
from service.logging import get_logger

log = get_logger("livetoken.upstream")
MAX_ANSWER_BYTES = 1 << 20  # a token is a few hundred bytes; an error page a few kB
MAX_PROXY_HEAD_BYTES = 16 << 10  # a proxy's answer to CONNECT is a status line and a few headers
TOO_LARGE = "The upstream's answer is larger than any answer to this request."
_FORBIDDEN_IN_HEADERS = ("\r", "\n", "\0")
# How long closing the pool waits for the servers' close_notify before it cuts the connections still closing.
CLOSE_GRACE_SECONDS = 1.0


class UpstreamConnectionError(ConnectionError):
    """The connection failed before a whole answer arrived (refused, reset, closed, not HTTP, too large)."""


class UpstreamAnswer(NamedTuple):
    """One HTTP answer: status, reason phrase, headers (lower-case names) and the decoded body."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    @property
    def is_json(self) -> bool:
        """Whether the body says it is JSON (as aiohttp's `json()` checks it)."""
        kind = self.headers.get("content-type", "").partition(";")[0].strip().lower()
        return kind == "application/json" or kind.endswith("+json")


def _inflate(body: bytes, wbits: int) -> bytes:
    """Decompress, refusing more than MAX_ANSWER_BYTES of output (a small compressed answer can expand a
    thousandfold)."""
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, MAX_ANSWER_BYTES + 1)
    if len(out) > MAX_ANSWER_BYTES:
        raise UpstreamConnectionError(TOO_LARGE)
    if not inflater.eof:
        raise zlib.error("incomplete or truncated stream")
    return out


def _decoded(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return _inflate(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":  # zlib-wrapped as the RFC says; some servers send raw deflate
        try:
            return _inflate(body, zlib.MAX_WBITS)
        except zlib.error:
            return _inflate(body, -zlib.MAX_WBITS)
    raise UpstreamConnectionError(f"The upstream answered with an encoding that was not asked for: {encoding!r}.")


def _time_out(answer: asyncio.Future[UpstreamAnswer]) -> None:
    if not answer.done():
        answer.set_exception(TimeoutError())


class _Connection(asyncio.Protocol):
    """One TLS connection; at most one request in flight."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self._future: asyncio.Future[UpstreamAnswer] | None = None
        self._reason = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._head_done = False  # this answer's status line and headers are in
        self._refusal = ""  # why a callback stopped the parser (its exception reaches us wrapped)
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self.answered_any = False  # a byte of an answer has arrived on this connection (since its last request)
        self._eof = False  # the server ended the stream cleanly (a FIN, or TLS close_notify)
        self.lost: asyncio.Future[None] = loop.create_future()  # done once the socket is closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, data: bytes) -> asyncio.Future[UpstreamAnswer]:
        """Write one whole request; the future gets its answer."""
        self.reusable = False
        self.answered_any = False
        self._future = future = self._loop.create_future()
        self._start_answer()
        if self.closed or self.transport is None:
            future.set_exception(UpstreamConnectionError("The upstream connection is closed."))
        else:
            self.transport.write(data)
        return future

    def _start_answer(self) -> None:
        self._reason, self._headers, self._body, self._size, self._head_done = b"", {}, [], 0, False

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self._future is None:  # an answer starts that no request asked for (after ours, in the same bytes)
            self._refusal = "The upstream sent an answer nobody asked for."
            raise UpstreamConnectionError(self._refusal)

    def on_headers_complete(self) -> None:
        self._head_done = True

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_ANSWER_BYTES:
            self._refusal = TOO_LARGE
            raise UpstreamConnectionError(TOO_LARGE)
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # 100 Continue, 103 Early Hints: the answer is still to come
            self._start_answer()
            return
        self._complete(status, reusable=self._parser.should_keep_alive())

    def _complete(self, status: int, *, reusable: bool) -> None:
        future = self._future
        self._future = None
        self.reusable = reusable
        if future is None or future.done():  # an answer nobody asked for, or one nobody waits for any more
            self.close()
            return
        try:
            body = _decoded(b"".join(self._body), self._headers.get("content-encoding", ""))
        except (zlib.error, UpstreamConnectionError) as exc:
            self.reusable = False
            future.set_exception(UpstreamConnectionError(f"The upstream's answer could not be decoded: {exc}"))
            return
        future.set_result(UpstreamAnswer(status, self._reason.decode("latin-1"), self._headers, body))

    def data_received(self, data: bytes) -> None:
        if self._future is None:
            # Bytes nobody asked for on an idle connection (a late or unsolicited answer): its stream can no longer
            # be trusted to start where the next request's answer starts. httpcore drops such a connection too.
            self.close()
            return
        self.answered_any = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, UpstreamConnectionError) as exc:
            self._fail(UpstreamConnectionError(self._refusal or f"The upstream's answer is not valid HTTP/1.1: {exc}"))

    def eof_received(self) -> bool:
        self.closed = True  # half-closed by the server: never handed out again
        self._eof = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if not self.lost.done():
            self.lost.set_result(None)
        headers = self._headers
        if (
            self._future is not None
            and self._head_done
            and self._eof
            and exc is None
            and "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
        ):  # an answer without a length ends where the connection does (RFC 9112 §6.3), if it ends cleanly: a
            # reset or a TLS stream cut without close_notify may have cut the answer short
            self._complete(self._parser.get_status_code(), reusable=False)
            return
        self._fail(UpstreamConnectionError("The upstream closed the connection before answering."))

    def _fail(self, exc: Exception) -> None:
        future, self._future = self._future, None
        if future is not None and not future.done():
            future.set_exception(exc)
        self.close()

    def close(self) -> None:
        """Close now (a request in flight fails)."""
        self.reusable = False
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        """Close the socket at once (a TLS close still waiting for the server's close_notify is cut short)."""
        self.reusable = False
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class _TunnelSetup(asyncio.Protocol):
    """The proxy's answer to our CONNECT: its head, up to the blank line; then TLS takes the connection over."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.received = bytearray()
        self.answered: asyncio.Future[tuple[bytes, bytes]] = loop.create_future()  # (head, what came after it)

    def data_received(self, data: bytes) -> None:
        if self.answered.done():
            return
        self.received += data
        end = self.received.find(b"\r\n\r\n")
        if end >= 0:
            self.answered.set_result((bytes(self.received[: end + 4]), bytes(self.received[end + 4 :])))
        elif len(self.received) > MAX_PROXY_HEAD_BYTES:
            self.answered.set_exception(UpstreamConnectionError("The egress proxy's answer to CONNECT is too long."))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answered.done():
            self.answered.set_exception(UpstreamConnectionError("The egress proxy closed the connection."))


def _tunnel_status(head: bytes) -> tuple[int, str]:
    """(status, reason) of a proxy's answer to CONNECT; UpstreamConnectionError if it is not one."""
    line = head.partition(b"\r\n")[0].decode("latin-1")
    version, _, status_reason = line.partition(" ")
    status, _, reason = status_reason.partition(" ")
    if not version.startswith("HTTP/1.") or len(status) != 3 or not status.isdigit():
        raise UpstreamConnectionError("The egress proxy's answer to CONNECT is not HTTP/1.1.")
    return int(status), reason


DNS_TTL = 10.0  # seconds a host's addresses are reused (aiohttp's ttl_dns_cache): no lookup per connection


class _Resolver:
    """The origin's addresses, looked up at most every DNS_TTL seconds, IPv6 and IPv4 interleaved (RFC 8305) so a
    connection falls back from one family to the other."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._addresses: list[tuple[socket.AddressFamily, str, int]] = []
        self._until = 0.0

    async def addresses(self) -> list[tuple[socket.AddressFamily, str, int]]:
        loop = asyncio.get_running_loop()
        if self._addresses and loop.time() < self._until:
            return self._addresses
        infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
        by_family: dict[socket.AddressFamily, list[tuple[socket.AddressFamily, str, int]]] = {}
        for family, _, _, _, sockaddr in infos:
            entry = (family, str(sockaddr[0]), int(sockaddr[1]))
            if entry not in by_family.setdefault(family, []):
                by_family[family].append(entry)
        self._addresses = [a for group in itertools.zip_longest(*by_family.values()) for a in group if a is not None]
        self._until = loop.time() + DNS_TTL
        return self._addresses

    def forget(self) -> None:
        """Look the host up again next time (no address answered)."""
        self._until = 0.0


class UpstreamConnections:
    """Kept-alive connections to the one origin of `url`, each carrying one request at a time; through `proxy` (a
    CONNECT tunnel, TLS end to end inside it) when one is set."""

    def __init__(
        self, url: str, ssl_context: ssl.SSLContext | None, idle_seconds: float, proxy: Proxy | None = None
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"The upstream URL must be http(s)://host[:port]/…, not {url!r}.")
        default_port = 443 if parts.scheme == "https" else 80
        self._host = parts.hostname
        self._port = parts.port or default_port
        host = f"[{self._host}]" if ":" in self._host else self._host
        self.host_header = host if self._port == default_port else f"{host}:{self._port}"
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._ssl = (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        self._idle_seconds = idle_seconds
        self._proxy = proxy
        self._resolver = _Resolver(self._host, self._port)
        self.stale_retries = 0  # requests sent again because a pooled connection was found closed
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()  # every connection whose socket is not closed yet
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    def head(self, method: str, headers: Mapping[str, str]) -> bytes:
        """The request head up to (not including) `Content-Length`, in the order aiohttp writes it: the request
        line, `Host`, `headers` in their order, `Accept`, `Accept-Encoding`. ValueError (naming the header, not
        its value) for a header that would break the head."""
        lines = [f"{method} {self.target} HTTP/1.1", f"Host: {self.host_header}"]
        for name, value in {**headers, "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}.items():
            if any(c in name or c in value for c in _FORBIDDEN_IN_HEADERS) or ":" in name:
                raise ValueError(f"The upstream request's {name.split(':')[0]!r} header holds a line break or NUL.")
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n").encode("latin-1")

    @staticmethod
    def extra_lines(headers: Mapping[str, str]) -> bytes:
        """Header lines to add to a head (trace propagation): a header whose name or value could break the head
        (CR, LF, NUL, a colon in the name, an empty name) is left out and logged by name, never sent."""
        lines = []
        for name, value in headers.items():
            if not name or ":" in name or any(c in name or c in value for c in _FORBIDDEN_IN_HEADERS):
                log.warning("upstream_header_dropped", header=name.split(":")[0][:40], why="line break, NUL or colon")
                continue
            lines.append(f"{name}: {value}\r\n")
        return "".join(lines).encode("latin-1", errors="replace")

    async def request(self, head: bytes, body: bytes, within: float) -> UpstreamAnswer:
        """Send `head` (from head(), plus any extra header lines) with `body`; the whole answer. TimeoutError when
        it has not come `within` seconds from now (connecting included); UpstreamConnectionError or
        OSError/ssl.SSLError when no whole answer came back."""
        loop = asyncio.get_running_loop()
        due = loop.time() + within
        data = b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
        connection = self._take()
        if connection is not None:
            try:
                return await self._exchange(connection, data, due, loop)
            except TimeoutError:  # an OSError too, but the deadline's: never a stale connection
                raise
            except (UpstreamConnectionError, OSError):
                if connection.answered_any or loop.time() >= due:
                    raise
                # A pooled connection the server had already closed (not a byte of answer came back): the request
                # did not get through. Once more on a new connection, at once and inside the same deadline: this
                # is not a failure of Google's (aiohttp and httpcore retry such a connection too).
                self.stale_retries += 1
        async with asyncio.timeout_at(due):
            connection = await self._connect()
        return await self._exchange(connection, data, due, loop)

    async def _exchange(
        self, connection: _Connection, data: bytes, due: float, loop: asyncio.AbstractEventLoop
    ) -> UpstreamAnswer:
        """One request on `connection`; the connection is parked for reuse or closed."""
        answer_future = connection.send(data)
        # One timer on the answer itself (asyncio.timeout's task-cancelling machinery cost ~2% of a token).
        timer = loop.call_at(due, _time_out, answer_future)
        try:
            answer = await answer_future
        except BaseException:
            connection.close()  # failed, timed out or cancelled mid-request: its stream cannot be trusted
            raise
        finally:
            timer.cancel()
        if connection.reusable and not self._closed:
            self._park([connection])
        else:
            connection.close()
        return answer

    def _park(self, connections: list[_Connection]) -> None:
        """Keep `connections` idle for the next requests (from now: the sweeper closes them `idle_seconds` on)."""
        now = asyncio.get_running_loop().time()
        for connection in connections:
            connection.idle_since = now
            connection.reusable = True
        self._idle.extend(connections)
        if connections and self._sweeper is None:
            self._arm_sweeper()

    def _take(self) -> _Connection | None:
        idle = self._idle
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to have been closed
            if not connection.closed:
                return connection
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._proxy is not None:
            return await self._connect_through(self._proxy, loop)
        failure: OSError | None = None
        for family, address, port in await self._resolver.addresses():
            try:
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop),
                    address,
                    port,
                    family=family,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
            except OSError as exc:  # this address (or family) is unreachable: the next one
                failure = exc
                continue
            return self._opened(connection)
        self._resolver.forget()
        raise failure or UpstreamConnectionError(f"{self._host} has no address.")

    async def _connect_through(self, proxy: Proxy, loop: asyncio.AbstractEventLoop) -> _Connection:
        """A tunnel through the proxy to the origin (CONNECT), then TLS with the origin inside it. The proxy's
        refusal or absence is one log line naming the proxy (never its credentials) and a connection error."""
        target = f"{self._host}:{self._port}"
        try:
            transport, setup = await loop.create_connection(lambda: _TunnelSetup(loop), proxy.host, proxy.port)
        except OSError as exc:
            log.warning("egress_proxy_unreachable", proxy=proxy.shown, target=target, error=exc.strerror or str(exc))
            raise
        try:
            transport.write(proxy.connect_request(self._host, self._port))
            head, after = await setup.answered
            status, reason = _tunnel_status(head)
            if status == 200 and after:  # the origin speaks only after our TLS hello: this is not a tunnel
                raise UpstreamConnectionError("The egress proxy sent data before the tunnel was used.")
            if status != 200:
                log.warning("egress_proxy_refused", proxy=proxy.shown, target=target, status=status, reason=reason)
                raise UpstreamConnectionError(f"The egress proxy refused the tunnel to {target}: {status} {reason}.")
            connection = _Connection(loop)
            if self._ssl is None:
                transport.set_protocol(connection)
                connection.connection_made(transport)
                return self._opened(connection)
            tls = await loop.start_tls(transport, connection, self._ssl, server_hostname=self._host)
            if tls is None:  # pragma: no cover - start_tls returns None only for a transport closed meanwhile
                raise UpstreamConnectionError("The egress proxy closed the tunnel during the TLS handshake.")
            connection.connection_made(tls)
            return self._opened(connection)
        except BaseException:
            transport.close()
            raise

    def _opened(self, connection: _Connection) -> _Connection:
        """Count `connection` as open until its socket is closed (aclose waits for it)."""
        self._open.add(connection)
        connection.lost.add_done_callback(lambda _: self._open.discard(connection))
        return connection

    def _arm_sweeper(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(self._idle_seconds / 4, self._sweep, context=contextvars.Context())

    def _sweep(self) -> None:
        """Close the connections idle longer than `idle_seconds`; look again while any are idle."""
        self._sweeper = None
        cutoff = asyncio.get_running_loop().time() - self._idle_seconds
        keep = []
        for connection in self._idle:
            if connection.closed:
                continue
            if connection.idle_since < cutoff:
                connection.close()
            else:
                keep.append(connection)
        self._idle = keep
        if keep and not self._closed:
            self._arm_sweeper()

    @property
    def idle(self) -> int:
        """Open connections waiting for a request."""
        return sum(1 for c in self._idle if not c.closed)

    async def open(self, count: int, each_within: float) -> int:
        """Open `count` connections now (TCP and TLS handshakes done before the first burst needs them) and keep
        them idle; returns how many opened."""

        async def one() -> _Connection | None:
            try:
                async with asyncio.timeout(each_within):
                    return await self._connect()
            except (OSError, TimeoutError, ssl.SSLError):
                return None

        opened = [c for c in await asyncio.gather(*(one() for _ in range(count))) if c is not None]
        self._park(opened)
        return len(opened)

    async def aclose(self) -> None:
        """Close every idle connection and return once their sockets are closed, and those of connections a failed
        request closed (one in use closes when its request ends). A TLS close sends close_notify and closes the
        socket when the server's comes back: that is waited for, CLOSE_GRACE_SECONDS at most, then cut short."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        closing = [c for c in self._open if c.closed]
        if closing:
            await asyncio.wait([c.lost for c in closing], timeout=CLOSE_GRACE_SECONDS)
        for connection in closing:
            if not connection.lost.done():
                connection.abort()
        await asyncio.sleep(0)  # let the transports' close callbacks run
