"""The rate limiter's one hot command, pipelined on one Redis connection.

`Redis.execute_command` wraps each command in a pool condition and its own timeout, a retry loop, a send
`wait_for` (a task per command), a read timeout and observability hooks: about half of what a 429 costs. And a
connection per command in flight means a `send()` and a read per command: on a small VM a TCP send to another
process costs the sender ~47 µs of CPU, a fifth of a whole 401.

So the limiter writes its commands to one connection (or a few) as a pipeline: a command is queued, and every
command queued in one event-loop iteration goes out in one `send()`; Redis answers in order, and one read hands
each caller its reply. The connection is opened by redis-py (same URL parsing, TLS, AUTH, SELECT and client
name) and then read by this module's protocol, with hiredis parsing the replies.

Deadlines keep RedisDeadline's rule (deadline.py): a reply that waited in the socket buffer for our own busy
loop is not late. A command whose reply is still missing `timeout` seconds after it was written, at the first
I/O poll after that, fails with TimeoutError, and so does every command behind it on that connection, which is
closed (a Redis that froze for a whole budget is not trusted to stay in step). A caller cancelled while it waits
leaves its slot in the queue: its reply, when it comes, is dropped, and the connection stays in step.

Redis instrumentation cannot see these commands, so each makes its own client span, with the attributes the
instrumentation gives the shared client's (arguments never recorded: `EVALSHA ? ? …`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import os
import socket
from collections import deque
from typing import Any

import hiredis
import redis.asyncio as aioredis
from hiredis import pack_command
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError
from redis.maint_notifications import MaintNotificationsConfig

from service.ratelimit.deadline import LOOK_AGAIN
from service.tracing import NO_TRACING, Attributes, Tracing

_MORE = object()  # hiredis' "not enough data yet"
# The connection's own callbacks serve every request: they run in an empty context, not in that of the request
# that happened to arm them (which they would otherwise keep alive, its span included).
_DETACHED = contextvars.Context()


def redis_span_attributes(connection_kwargs: dict[str, Any]) -> Attributes:
    """What a span of a command on these connections says about the server (as redis instrumentation says it)."""
    attributes: dict[str, str | int] = {
        "db.system": "redis",
        "db.redis.database_index": int(connection_kwargs.get("db") or 0),
    }
    if "path" in connection_kwargs:
        attributes.update({"server.address": str(connection_kwargs["path"]), "network.transport": "unix"})
    else:
        attributes["server.address"] = str(connection_kwargs.get("host", "localhost"))
        attributes.update({"server.port": int(connection_kwargs.get("port", 6379)), "network.transport": "tcp"})
    return attributes


class CommandNotSent(RedisConnectionError):
    """The connection went before this command was written: it never reached Redis, and may go out on another."""


class BehindAFailure(RedisConnectionError):
    """The command ahead of this one on the same connection failed (its reply was late, or the stream broke): this
    one failed with it, and says nothing more about Redis than that one failure."""


def _reply_error(message: str) -> ResponseError:
    """An error reply as redis-py raises it (the limiter reloads its script on NOSCRIPT)."""
    return NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message)


class _Pipe(asyncio.Protocol):
    """One Redis connection carrying a pipeline: commands out in order, replies matched to them in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, writer: asyncio.StreamWriter, timeout: float) -> None:
        self._loop = loop
        # The stream writer redis-py opened stays referenced while the socket lives: collected, it would close
        # the transport it no longer reads.
        self._writer = writer
        self._transport: asyncio.WriteTransport = writer.transport
        self._timeout = timeout
        self._reader = hiredis.Reader(protocolError=InvalidResponse, replyError=_reply_error, notEnoughData=_MORE)
        # Each command queued and not answered yet, oldest first: [its future (done already if its caller gave
        # up), when its reply is due (infinity until it is written)].
        self._waiting: deque[list[Any]] = deque()
        self._unsent: list[list[Any]] = []  # the entries of the commands in _out
        self._out: list[bytes] = []
        self._watchdog: asyncio.TimerHandle | None = None
        self._looked = False  # the oldest command is due and the loop is polling once more for its reply
        self.closed = False
        # A second handle on the socket, only to peek for an unread close (asyncio's transport hides recv). TLS
        # connections have none: their close is inside the stream, and connection_lost tells in time.
        self._peek: socket.socket | None = None
        raw = writer.transport.get_extra_info("socket")
        if raw is not None and writer.transport.get_extra_info("sslcontext") is None:
            with contextlib.suppress(OSError):  # out of descriptors: no peeking; connection_lost still tells
                self._peek = socket.socket(fileno=os.dup(raw.fileno()))

    @property
    def in_flight(self) -> int:
        """Commands written or queued and not answered yet."""
        return len(self._waiting)

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        """Queue one packed command; the future gets its reply. Written with the others of this loop iteration."""
        future = self._loop.create_future()
        if self.closed:
            future.set_exception(RedisConnectionError("The connection to Redis is closed."))
            return future
        if not self._out:
            self._loop.call_soon(self._flush, context=_DETACHED)
        self._out.append(packed)
        entry: list[Any] = [future, math.inf]  # due `timeout` after it is written (see _flush)
        self._waiting.append(entry)
        self._unsent.append(entry)
        return future

    def _flush(self) -> None:
        out, self._out = self._out, []
        unsent, self._unsent = self._unsent, []
        if self.closed or not out:
            return
        # Nothing in flight: Redis (its `timeout`, CLIENT KILL, a restart) or a load balancer may have closed the
        # connection meanwhile, and its FIN may be waiting unread. Written now, the commands would be lost with it;
        # found now (one non-blocking peek, only when the connection was idle), they were never sent and go out on
        # a new connection (LeanConnections.execute).
        if len(self._waiting) == len(unsent) and self._peer_closed():
            self.closed = True
            self._transport.abort()  # connection_lost fails the unsent commands as CommandNotSent
            return
        self._transport.write(out[0] if len(out) == 1 else b"".join(out))
        # The budget runs from the write, not from the queueing: under a burst, the iteration that queued a
        # command may run long before the one that writes it, and that wait is our loop's, not Redis's.
        due = self._loop.time() + self._timeout
        for entry in unsent:
            entry[1] = due
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(due, self._on_due, context=_DETACHED)

    def data_received(self, data: bytes) -> None:
        reader, waiting = self._reader, self._waiting
        reader.feed(data)
        answered = False
        try:
            reply = reader.gets()
            while reply is not _MORE:
                if not waiting:  # a reply no command asked for
                    raise InvalidResponse("Redis sent a reply no command was waiting for.")
                future, _ = waiting.popleft()
                answered = True
                if not future.done():  # a caller that gave up leaves its slot: its reply is dropped here
                    if isinstance(reply, ResponseError):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
                reply = reader.gets()
        except InvalidResponse as exc:  # not RESP, or out of step: nothing on this connection can be trusted now
            self._fail(exc)
            return
        if answered:  # a whole reply came: the next oldest gets its own look (a trickle of bytes does not)
            self._looked = False

    def _peer_closed(self) -> bool:
        """Whether the other end has closed the connection (an end of stream waits unread in the socket)."""
        if self._peek is None:
            return False
        try:
            peeked = self._peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return peeked == b""

    def _on_due(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        due = self._waiting[0][1]
        now = self._loop.time()
        if due > now:  # the command that was due has its reply; watch the next oldest (once it is written)
            self._looked = False
            if due != math.inf:
                self._watchdog = self._loop.call_at(due, self._on_due, context=_DETACHED)
            return
        if not self._looked:
            # Due: one more loop iteration, whose I/O poll delivers a reply that is already waiting. The look is
            # a timer a millisecond on: a zero-delay one runs before the next poll on uvloop (it becomes a
            # call_soon), a real timer only after it, on both loops.
            self._looked = True
            self._watchdog = self._loop.call_at(now + LOOK_AGAIN, self._on_due, context=_DETACHED)
            return
        self._fail(TimeoutError())

    def _fail(self, exc: BaseException) -> None:
        """Fail the oldest command with `exc` (a timeout or a broken stream) and every one behind it on this
        connection as BehindAFailure (one failure of Redis, not one per command), then close it."""
        self._fail_waiting(exc, behind=BehindAFailure("A command ahead on the same Redis connection failed."))
        self._transport.abort()

    def _fail_waiting(self, exc: BaseException, behind: BaseException | None = None) -> None:
        """Closed for new commands; the oldest written command still waiting fails with `exc`, the written ones
        behind it with `behind` (default `exc`), and those never written with CommandNotSent; no watchdog left."""
        self.closed = True
        self._out, self._unsent = [], []
        first = True
        while self._waiting:
            future, due = self._waiting.popleft()
            if future.done():
                continue
            if due == math.inf and not isinstance(exc, TimeoutError):
                # The connection closed before it was written: it may go out on another. (Behind a late reply, a
                # new connection to the same hung Redis would only time out again.)
                future.set_exception(CommandNotSent("The Redis connection closed before the command was written."))
            elif due == math.inf:
                future.set_exception(behind or exc)
            else:
                future.set_exception(exc if first or behind is None else behind)
                first = False
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._peek is not None:
            self._peek.close()
            self._peek = None
        self._fail_waiting(
            RedisConnectionError("Connection to Redis lost."),
            behind=BehindAFailure("The Redis connection was lost under an earlier command."),
        )

    def eof_received(self) -> bool:
        self.closed = True  # no new command goes here; those waiting fail in connection_lost
        return False  # close: Redis does not half-close a connection it means to keep

    def close(self) -> None:
        """Close now; commands still waiting fail as lost."""
        if not self.closed:
            self._fail_waiting(RedisConnectionError("The limiter's Redis connections are closed."))
            self._transport.abort()


class LeanConnections:
    """Up to `size` pipelined connections to one Redis (the limiter uses one); a command goes to the least busy."""

    def __init__(
        self,
        pool: aioredis.ConnectionPool,
        size: int,
        timeout: float,
        *,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        # Deadlines are ours (one per command), so the connections themselves carry none for reads and writes.
        # RESP2, and no maintenance notifications: under RESP3 a server may push frames (MOVING, MIGRATING…) on
        # any connection, and a push read as a reply would hand every later caller the previous caller's verdict.
        self._kwargs = {
            **{k: v for k, v in pool.connection_kwargs.items() if k != "maint_notifications_pool_handler"},
            "socket_timeout": None,
            "protocol": 2,
            "maint_notifications_config": MaintNotificationsConfig(enabled=False),
        }
        self._tracing = tracing
        self._span_attributes = redis_span_attributes(self._kwargs)
        self._factory = pool.connection_class
        self.size = size
        self._timeout = timeout
        self._pipes: list[_Pipe] = []
        self._opening: asyncio.Future[_Pipe] | None = None
        self._closed = False

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply; redis errors as redis-py raises them.

        TimeoutError when Redis has not answered `timeout` after the command was written (a reply that waited for
        our own busy loop is not late), or when opening a connection takes longer than that.
        """
        pipe = self._pick()
        if pipe is None:
            pipe = await self._open()
        with self._tracing.span(str(args[0]), self._span_attributes, client=True) as span:
            if span.is_recording():
                span.set_attribute("db.statement", " ".join([str(args[0]), *["?"] * (len(args) - 1)]))
                span.set_attribute("db.redis.args_length", len(args))
            # hiredis packs in C the same RESP bytes redis-py's Python packer makes (a test compares).
            packed = pack_command(args)
            try:
                return await pipe.send(packed)
            except CommandNotSent:
                # The connection went (closed by Redis while idle, killed, a restart) before this command was
                # written: it never reached Redis, so it goes out once on a new connection.
                return await (self._pick() or await self._open()).send(packed)

    def _pick(self) -> _Pipe | None:
        """The open connection with the fewest commands in flight; None when one more should be opened."""
        pipes = self._pipes
        if len(pipes) == 1 and not pipes[0].closed and self.size == 1:
            return pipes[0]
        live = [p for p in pipes if not p.closed]
        if len(live) != len(pipes):
            self._pipes = pipes = live
        if not pipes:
            return None
        best = min(pipes, key=lambda p: p.in_flight)
        if best.in_flight and len(pipes) < self.size:
            return None
        return best

    async def _open(self) -> _Pipe:
        """A new connection (callers arriving while it is opened share it); redis-py connects, AUTHs and SELECTs,
        then this module's protocol takes the socket over."""
        if self._closed:
            raise RedisConnectionError("The limiter's Redis connections are closed.")
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._connect())
            self._opening.add_done_callback(self._opened)
        return await asyncio.shield(self._opening)

    def _opened(self, future: asyncio.Future[_Pipe]) -> None:
        self._opening = None
        if not future.cancelled() and future.exception() is None:
            pipe = future.result()
            if self._closed:
                pipe.close()
            else:
                self._pipes.append(pipe)

    async def _connect(self) -> _Pipe:
        conn = self._factory(**self._kwargs)
        try:
            async with asyncio.timeout(self._timeout):
                await conn.connect()  # type: ignore[no-untyped-call]
        except BaseException:  # timed out or cancelled mid-handshake too: the socket is not left to the collector
            await conn.disconnect(nowait=True)
            raise
        writer: asyncio.StreamWriter | None = getattr(conn, "_writer", None)
        if writer is None:  # pragma: no cover - redis-py's connection keeps its stream writer here (pinned)
            await conn.disconnect()
            raise RedisConnectionError("redis-py's connection has no stream writer to take over.")
        # The socket is ours now: redis-py's connection object forgets it (so it neither reads nor closes it).
        conn._writer = conn._reader = None
        conn._parser.on_disconnect()  # type: ignore[no-untyped-call]
        pipe = _Pipe(asyncio.get_running_loop(), writer, self._timeout)
        writer.transport.set_protocol(pipe)
        return pipe

    async def aclose(self) -> None:
        """Close every connection; commands still waiting fail as lost."""
        self._closed = True
        pipes, self._pipes = self._pipes, []
        for pipe in pipes:
            pipe.close()
        await asyncio.sleep(0)  # let the transports' close callbacks run
