"""A lean way to run the rate limiter's one hot command on redis-py's own connections.

`Redis.execute_command` wraps each command in a pool condition and its own timeout, a retry loop, a send
`wait_for` (a task per command), a read timeout and observability hooks: about half of what a 429 costs the
service. The limiter needs none of that around its single EVALSHA, so it keeps a small LIFO set of redis-py
connections (same URL parsing, TLS, AUTH and hiredis parser) and bounds send and reply with one deadline.
Redis instrumentation cannot see these commands, so each makes its own client span, with the attributes the
instrumentation gives the shared client's (arguments never recorded: `EVALSHA ? ? …`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import redis.asyncio as aioredis
from hiredis import pack_command
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from service.ratelimit.deadline import RedisDeadline
from service.tracing import NO_TRACING, Attributes, Tracing


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


class LeanConnections:
    """At most `size` connections to one Redis; a command waits (within its deadline) for a free one."""

    def __init__(
        self,
        pool: aioredis.ConnectionPool,
        size: int,
        timeout: float,
        wait: float | None = None,
        *,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        # Deadlines are ours (one per command), so the connections themselves carry none for reads and writes.
        self._kwargs = {**pool.connection_kwargs, "socket_timeout": None}
        self._tracing = tracing
        self._span_attributes = redis_span_attributes(self._kwargs)
        self._factory = pool.connection_class
        self.size = size
        self._timeout = timeout
        self._wait = wait if wait is not None else 8 * timeout
        self._idle: list[AbstractConnection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[AbstractConnection]] = deque()
        self._closed = False

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply; redis errors as redis-py raises.

        TimeoutError when Redis has not answered `timeout` after the send (a reply that waited for our own busy
        loop is not late: see RedisDeadline). Waiting for a free connection is our own queueing, bounded by
        `wait` (8 x timeout by default).
        """
        if self._idle:
            conn = self._idle.pop()
        else:  # our own queue: bounded by `wait` (a free connection, the common case, needs no timer)
            async with asyncio.timeout(self._wait):
                conn = await self._acquire()
        try:
            with self._tracing.span(str(args[0]), self._span_attributes, client=True) as span:
                if span.is_recording():
                    span.set_attribute("db.statement", " ".join([str(args[0]), *["?"] * (len(args) - 1)]))
                    span.set_attribute("db.redis.args_length", len(args))
                async with RedisDeadline(self._timeout):
                    # hiredis packs in C the same RESP bytes redis-py's Python packer makes (a test compares).
                    await conn.send_packed_command(pack_command(args), check_health=False)
                    reply = await conn.read_response()
        except ResponseError:
            self._release(conn)  # an error reply leaves the connection in step
            raise
        except BaseException:
            # Timed out, cancelled or broken mid-command: a reply may still be on its way, so this connection
            # cannot be trusted to stay in step. redis-py has usually closed it already.
            await conn.disconnect(nowait=True)
            self._release(conn)
            raise
        self._release(conn)
        return reply

    async def _acquire(self) -> AbstractConnection:
        if self._closed:
            raise RedisConnectionError("The limiter's Redis connections are closed.")
        if self._open < self.size:
            self._open += 1
            return self._factory(**self._kwargs)  # connects on its first command
        waiter: asyncio.Future[AbstractConnection] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result())  # handed over just as we gave up: pass it on
            else:
                waiter.cancel()
            raise

    def _release(self, conn: AbstractConnection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    async def aclose(self) -> None:
        """Close every idle connection (busy ones close when their command ends and they come back)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.disconnect()
