"""Release many HTTP callers at the same instant over raw sockets (httpx's pool would queue them)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import msgspec


@dataclass(frozen=True)
class Answer:
    """One caller's answer: status, lower-cased headers, parsed JSON body, seconds from release to answer."""

    status: int
    headers: dict[str, str]
    body: dict[str, object]
    seconds: float


def post_request(path: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    """A complete HTTP/1.1 POST, ready to write."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _one(host: str, port: int, raw: bytes, released: float) -> Answer:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(raw)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    finally:
        writer.close()
    return Answer(
        int(status_line.split()[1]), headers, msgspec.json.decode(body) if body else {}, time.perf_counter() - released
    )


async def release_together(host: str, port: int, requests: list[bytes]) -> list[Answer]:
    """Every request on its own connection, all started in the same event-loop iteration."""
    released = time.perf_counter()
    return list(await asyncio.gather(*(_one(host, port, raw, released) for raw in requests)))
