"""A lean HTTP/1.1 keep-alive load generator on raw asyncio streams.

It runs in its own process so the service's CPU accounting sees only the service. Each connection sends
requests back to back (closed loop); the request bytes come from a factory so every request can differ.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    """What one run measured."""

    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def count(self) -> int:
        """Requests answered."""
        return sum(self.statuses.values())

    def percentile(self, p: float) -> float:
        """Latency percentile in seconds (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def build_request(method: str, path: str, host: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """Serialize one HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:].strip())
            break
    if length:
        await reader.readexactly(length)
    return status


async def _connection(  # noqa: PLR0917 - a load run is described by its arguments
    host: str,
    port: int,
    make_request: Callable[[int], bytes],
    counter: list[int],
    total: int,
    result: LoadResult,
    deadline: float,
    delay: float,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    if delay:
        await asyncio.sleep(delay)
    try:
        while counter[0] < total and time.perf_counter() < deadline:
            i = counter[0]
            counter[0] += 1
            started = time.perf_counter()
            writer.write(make_request(i))
            try:
                status = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                result.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            result.latencies.append(time.perf_counter() - started)
            result.statuses[status] = result.statuses.get(status, 0) + 1
    finally:
        writer.close()


async def run_load(
    host: str,
    port: int,
    make_request: Callable[[int], bytes],
    *,
    total: int,
    concurrency: int,
    max_seconds: float = 120.0,
    stagger: float = 0.0,
) -> LoadResult:
    """Send `total` requests over `concurrency` keep-alive connections (closed loop).

    With `stagger`, connection k sends its first request k/concurrency of `stagger` seconds after the start:
    callers that arrive independently rather than all in the same millisecond.
    """
    result = LoadResult()
    counter = [0]
    started = time.perf_counter()
    deadline = started + max_seconds
    await asyncio.gather(
        *(
            _connection(host, port, make_request, counter, total, result, deadline, k * stagger / concurrency)
            for k in range(concurrency)
        )
    )
    result.elapsed = time.perf_counter() - started
    return result
