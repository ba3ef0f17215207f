"""HTTP/1.1 connections with bounds: how long a request's headers may take, how many connections may be open.

uvicorn's httptools protocol waits for headers as long as a client cares to trickle them and keeps every
connection the kernel hands it; a few thousand silent or slowloris connections then hold every file descriptor
and the replica serves nothing, silently. `BoundedHttpToolsProtocol` gives each request a header deadline, and
one `ConnectionGuard` per server keeps the number of open connections under a bound by shedding the connection
that has been idle longest, so a caller with a real request still gets in.
"""

from __future__ import annotations

import asyncio
import math
import resource
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.fd_budget import fd_ceiling
from service.logging import get_logger
from service.metrics import Metrics

log = get_logger("livetoken")

ShedReason = Literal["header_timeout", "idle_evicted", "over_limit"]
SHED_REASONS: tuple[ShedReason, ...] = get_args(ShedReason)


@dataclass(frozen=True)
class ConnectionLimits:
    """The bounds one server holds its HTTP connections to."""

    max_connections: int = 4096
    """Open connections at most, idle ones included (lowered to fit the file-descriptor limit)."""
    header_timeout: float = 10.0
    """Seconds a request's headers may take to arrive, from the connection or the request's first byte."""
    keepalive_timeout: float = 5.0
    """Seconds a keep-alive connection may wait idle for its next request."""
    max_in_flight: int | None = None
    """Token requests worked on at once, each holding at most one upstream socket (None: no such bound)."""


class ConnectionGuard:
    """The open connections of one server, oldest idle first, held under `max_connections`.

    A connection is idle while no request is in progress on it: before its first request's headers are
    complete (silent, slowloris or merely slow callers) and between keep-alive requests. At the bound, a new
    connection displaces the connection idle longest; only when every connection is busy is the new one refused.
    """

    def __init__(self, limits: ConnectionLimits, metrics: Metrics, *, log_interval: float = 1.0) -> None:
        self.limits = limits
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        ceiling = fd_ceiling(nofile, limits.max_in_flight)
        self.max_connections = limits.max_connections if ceiling is None else min(limits.max_connections, ceiling)
        if self.max_connections < limits.max_connections:
            log.warning(
                "max_connections_lowered",
                configured=limits.max_connections,
                effective=self.max_connections,
                nofile_limit=nofile,
                hint="raise the open-files limit (ulimit -n) to allow more connections",
            )
        self._metrics = metrics
        self._open: set[BoundedHttpToolsProtocol] = set()
        self._idle: OrderedDict[BoundedHttpToolsProtocol, None] = OrderedDict()
        self._log_interval = log_interval
        self._unlogged: dict[ShedReason, int] = dict.fromkeys(SHED_REASONS, 0)
        self._log_handle: asyncio.TimerHandle | None = None
        self._last_log = -math.inf
        for reason in SHED_REASONS:  # every reason exported from the start, at 0, so alerts see the series
            metrics.connections_shed.labels(reason)
        metrics.open_connections.set_function(self.open_count)

    def open_count(self) -> int:
        """Connections open now."""
        return len(self._open)

    def admit(self, conn: BoundedHttpToolsProtocol) -> bool:
        """Count a new connection in (idle until its headers are complete); False if it must be closed."""
        if len(self._open) >= self.max_connections:
            if not self._idle:
                self.shed("over_limit")
                return False
            victim, _ = self._idle.popitem(last=False)
            self._open.discard(victim)
            victim.close_shed()
            self.shed("idle_evicted")
        self._open.add(conn)
        self._idle[conn] = None
        return True

    def mark_busy(self, conn: BoundedHttpToolsProtocol) -> None:
        """A request is in progress on `conn`: it is not a candidate for eviction."""
        self._idle.pop(conn, None)

    def mark_idle(self, conn: BoundedHttpToolsProtocol) -> None:
        """`conn` waits for its next request; it is now the newest idle connection."""
        if conn in self._open:
            self._idle[conn] = None

    def forget(self, conn: BoundedHttpToolsProtocol) -> None:
        """`conn` is closed or no longer HTTP (upgraded): it no longer counts."""
        self._open.discard(conn)
        self._idle.pop(conn, None)

    def shed(self, reason: ShedReason) -> None:
        """Count a connection closed to protect the server; the log line is aggregated, at most one per interval."""
        self._metrics.inc(self._metrics.connections_shed, reason)
        self._unlogged[reason] += 1
        if self._log_handle is None:
            delay = max(0.0, self._last_log + self._log_interval - time.monotonic())
            self._log_handle = asyncio.get_running_loop().call_later(delay, self._log_shed)

    def flush_log(self) -> None:
        """Log what was shed since the last line (the server calls this once it has stopped)."""
        self._log_handle = None
        if any(self._unlogged.values()):
            self._log_shed()

    def _log_shed(self) -> None:
        self._log_handle = None
        self._last_log = time.monotonic()
        counts = {reason: n for reason, n in self._unlogged.items() if n}
        self._unlogged = dict.fromkeys(SHED_REASONS, 0)
        log.warning(
            "connections_shed",
            **counts,
            open_connections=len(self._open),
            max_connections=self.max_connections,
        )


class HeadHoldingTransport:
    """The transport one response is written through: its head is held until the first body bytes, so head and
    body leave in one send() (uvicorn writes them apart: two system calls per answer). Everything else goes to
    the connection's transport as it is.

    Only the response's first write is held, by its position and not by what it looks like: uvicorn writes the head
    first (after any `1xx` head, which the client waits for and which passes at once), so a later body write that
    happens to read like a head is never held. Any later write or close sends what is held first: bytes leave in the
    order they were written.
    """

    __slots__ = ("_head", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._started = False  # the final response's first write has been seen

    def write(self, data: bytes) -> None:
        """Hold the response's head (its first write); send anything else, after the held head."""
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
            return
        if not self._started:
            if data.startswith(b"HTTP/1.1 1"):  # 100 Continue and other informational heads: at once
                self._transport.write(data)
                return
            self._started = True
            if data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n"):
                self._head = data
                return
        self._transport.write(data)

    def close(self) -> None:
        """Send what is held, then close (an answer cut short still shows its head, as before)."""
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline per request, counted by a shared `ConnectionGuard`.

    Built per server with `bounded_protocol(guard)`; uvicorn's own keep-alive timeout still closes
    connections idle between requests.
    """

    guard: ClassVar[ConnectionGuard]
    _header_deadline: asyncio.TimerHandle | None = None
    _busy = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
        """Count the connection in (or refuse it) and start its first request's header deadline."""
        super().connection_made(transport)
        if not self.guard.admit(self):
            transport.close()
            return
        self._header_deadline = self.loop.call_later(self.guard.limits.header_timeout, self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop counting the connection."""
        self._cancel_header_deadline()
        self.guard.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Bytes of a new request on a keep-alive connection start that request's header deadline."""
        if not self._busy and self._header_deadline is None and not self.transport.is_closing():
            self._header_deadline = self.loop.call_later(self.guard.limits.header_timeout, self._header_timeout)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        """The request is in: no header deadline, and the connection is busy until its response is sent. Its
        response is written through a HeadHoldingTransport (not a HEAD request's: it has no body to wait for)."""
        self._cancel_header_deadline()
        self._busy = True
        self.guard.mark_busy(self)
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not before and self.scope["method"] != "HEAD":
            # The request's task is created but has not run: nothing was written through the old transport yet.
            cycle.transport = HeadHoldingTransport(self.transport)  # type: ignore[assignment]  # a transport's duck

    def on_response_complete(self) -> None:
        """A response went out; when uvicorn then waits for a next request, the connection is idle again."""
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:
            self._busy = False
            self.guard.mark_idle(self)

    def handle_websocket_upgrade(self) -> None:
        """A WebSocket takes the transport over; it no longer counts as an HTTP connection."""
        self._cancel_header_deadline()
        self.guard.forget(self)
        super().handle_websocket_upgrade()

    def close_shed(self) -> None:
        """Close this connection because the guard evicted it."""
        self._cancel_header_deadline()
        self.transport.close()

    def _header_timeout(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.guard.forget(self)
            self.guard.shed("header_timeout")
            self.transport.close()

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None


def bounded_protocol(guard: ConnectionGuard) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for `uvicorn.Config(http=...)` whose connections are all held by `guard`."""

    class GuardedHttpToolsProtocol(BoundedHttpToolsProtocol):
        pass

    GuardedHttpToolsProtocol.guard = guard
    return GuardedHttpToolsProtocol
