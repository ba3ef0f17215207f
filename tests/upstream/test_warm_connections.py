"""The connections the warm-up opens to Google before the process is ready are the ones its first callers' mints
travel on: no TCP or TLS handshake is left for the first burst."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.support.processes import serving
from tests.support.service import auth, service_env, write_config

WARM = 8  # upstream.warm_connections in the test configuration


def _connections_to(pid: int, port: int) -> set[int]:
    """The local ports of process `pid`'s established TCP connections to `port` (what `ss -tnp` would list)."""
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            sockets.add(target.removeprefix("socket:[").removesuffix("]"))
    ports = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if state == "01" and inode in sockets and int(remote.rsplit(":", 1)[1], 16) == port:  # 01: ESTABLISHED
            ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


async def test_the_first_burst_mints_on_the_connections_the_warm_up_opened(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """`livetoken serve` warms 8 connections to Google; 8 callers at once (Google answering in 300 ms, so their
    mints overlap) all get tokens over exactly those 8 connections: the same local ports before and after, and
    not one more."""
    upstream = urlsplit(emulator.base_url)
    assert upstream.hostname == "127.0.0.1"
    assert upstream.port is not None
    mints = emulator.mint_count()
    with serving(write_config(tmp_path), service_env(emulator, redis_url)) as (proc, url):
        assert proc.proc is not None
        warmed = _connections_to(proc.proc.pid, upstream.port)
        emulator.set_latency(300)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            answers = await asyncio.gather(
                *(
                    client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(sub=f"first-{i}"))
                    for i in range(WARM)
                )
            )
        after = _connections_to(proc.proc.pid, upstream.port)
    assert '"upstream_warmed"' in proc.text
    assert len(warmed) == WARM
    assert [a.status_code for a in answers] == [201] * WARM
    assert emulator.mint_count() - mints == WARM
    assert after == warmed
