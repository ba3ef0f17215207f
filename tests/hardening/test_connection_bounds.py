"""Connection bounds of a real `livetoken serve`: silent, slowloris and surplus connections are shed, counted and
logged, and a normal caller is still answered promptly throughout."""

from __future__ import annotations

import contextlib
import json
import re
import selectors
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from service.fd_budget import FD_RESERVE, fd_ceiling, upstream_share
from tests.support.processes import ServiceProcess, serving
from tests.support.redis_proc import free_port
from tests.support.service import auth, service_env, with_default_warm_up, write_config

BOUNDS = """
[server]
max_connections = {max_connections}
header_timeout = "{header_timeout}"
keepalive_timeout = "{keepalive_timeout}"
request_timeout = "3s"
"""

PROMPT = 0.1  # seconds: a normal request during a flood is answered within this


def bounded_config(
    tmp_path: Path, max_connections: int = 64, header_timeout: str = "30s", keepalive_timeout: str = "5s"
) -> Path:
    """The test config with a [server] table holding the connection bounds."""
    return write_config(
        tmp_path,
        extra=BOUNDS.format(
            max_connections=max_connections, header_timeout=header_timeout, keepalive_timeout=keepalive_timeout
        ),
    )


def open_idle(port: int, count: int) -> list[socket.socket]:
    """`count` connections that never send a byte."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.setblocking(False)
        socks.append(sock)
    return socks


def is_closed(sock: socket.socket) -> bool:
    """True once the server has closed `sock` (EOF or reset); never blocks."""
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def wait_closed(socks: list[socket.socket], expected: int, timeout: float) -> set[socket.socket]:
    """Wait (at most `timeout`) until at least `expected` of `socks` are closed by the server; returns the closed."""
    closed: set[socket.socket] = set()
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ)
        while len(closed) < expected and (left := deadline - time.monotonic()) > 0:
            for key, _ in sel.select(left):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                if is_closed(ready):
                    closed.add(ready)
                    sel.unregister(ready)
    return closed


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    return length is None or len(body) >= int(length.group(1))


def read_response(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """One HTTP response (its head, and its body when it declares a length) from a non-blocking socket."""
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_READ)
        while not _complete(data) and (left := deadline - time.monotonic()) > 0:
            if sel.select(left):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    return data


def close_all(socks: list[socket.socket]) -> None:
    """Client side clean-up."""
    for sock in socks:
        sock.close()


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of the service's /metrics (0 when absent)."""
    text = httpx.get(url + "/metrics", timeout=5).text
    selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(f"{name}{{{selector}}}" if labels else name) + r" ([0-9.e+]+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def shed(url: str, reason: str) -> float:
    """livetoken_connections_shed_total for `reason`."""
    return metric(url, "livetoken_connections_shed_total", reason=reason)


def timed(call: Any) -> tuple[httpx.Response, float]:
    """The response of `call()` and how long it took."""
    started = time.monotonic()
    resp = call()
    return resp, time.monotonic() - started


def log_events(proc: ServiceProcess, event: str) -> list[dict[str, Any]]:
    """The service's JSON log lines for `event`."""
    lines = [line for line in proc.text.splitlines() if line.startswith("{")]
    return [record for record in map(json.loads, lines) if record.get("event") == event]


@contextmanager
def fresh_connections(url: str) -> Iterator[httpx.Client]:
    """A client that opens a new connection for every request (as a new caller would)."""
    with httpx.Client(base_url=url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        yield client


def test_idle_connections_beyond_the_bound_are_evicted_oldest_first_and_callers_still_get_in(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """With max_connections=64 and 400 silent connections opened in waves, every wave pushes out the connections
    idle longest (EOF within seconds), a new caller's POST /v1/tokens and /healthz each answer within 100 ms,
    open connections stay at the bound, and the evictions are counted and logged in aggregate."""
    with serving(bounded_config(tmp_path), service_env(emulator, redis_url)) as (proc, url):
        port = int(url.rsplit(":", 1)[1])
        flood: list[socket.socket] = []
        started = time.monotonic()
        try:
            with fresh_connections(url) as client:
                assert client.post("/v1/tokens", json={"profile": "voice"}, headers=auth()).status_code == 201
                for _wave in range(4):
                    flood += open_idle(port, 100)
                    minted, mint_took = timed(
                        lambda: client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())
                    )
                    health, health_took = timed(lambda: client.get("/healthz"))
                    assert (minted.status_code, health.status_code) == (201, 200)
                    assert mint_took < PROMPT, mint_took
                    assert health_took < PROMPT, health_took
            closed = wait_closed(flood, len(flood) - 64, timeout=10)
            assert len(closed) >= len(flood) - 64
            assert not closed & set(flood[-50:])  # the newest are kept: it is the oldest idle that go
            assert closed >= set(flood[:300])
            assert metric(url, "livetoken_open_connections") <= 64
            assert shed(url, "idle_evicted") >= len(flood) - 64
            assert shed(url, "header_timeout") == shed(url, "over_limit") == 0
        finally:
            close_all(flood)
        elapsed = time.monotonic() - started
    lines = log_events(proc, "connections_shed")
    assert lines, proc.text[-2000:]
    assert len(lines) <= elapsed + 2  # aggregated: at most one line a second
    assert sum(line.get("idle_evicted", 0) for line in lines) >= len(flood) - 64
    assert lines[0]["max_connections"] == 64


def test_silent_and_slowloris_connections_are_closed_at_the_header_deadline(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """header_timeout=1s: connections that send nothing, that trickle headers one byte every 0.5 s, and a
    keep-alive connection trickling its second request are each closed about a second after their request
    began (keep-alive idle time is 5 s, so the deadline is what closes them); /healthz answers meanwhile."""
    config = bounded_config(tmp_path, header_timeout="1s", keepalive_timeout="5s")
    with serving(config, service_env(emulator, redis_url)) as (_proc, url):
        port = int(url.rsplit(":", 1)[1])
        keepalive = socket.create_connection(("127.0.0.1", port), timeout=5)
        keepalive.setblocking(False)
        keepalive.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(keepalive).startswith(b"HTTP/1.1 200")
        opened = time.monotonic()
        silent = open_idle(port, 20)
        slow = open_idle(port, 20)
        everyone = [*silent, *slow, keepalive]
        began = dict.fromkeys(everyone, opened)
        closed_at: dict[socket.socket, float] = {}
        trickle = iter(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100)
        try:
            with fresh_connections(url) as client, selectors.DefaultSelector() as sel:
                for sock in everyone:
                    sel.register(sock, selectors.EVENT_READ)
                deadline = time.monotonic() + 8
                while len(closed_at) < len(everyone) and time.monotonic() < deadline:
                    byte = bytes([next(trickle)])
                    for sock in [*slow, keepalive]:
                        if sock not in closed_at:
                            with contextlib.suppress(OSError):  # closed by now: the select below sees it
                                sock.send(byte)
                    tick_end = time.monotonic() + 0.5  # the attacker's pace: one byte every half second
                    while (left := tick_end - time.monotonic()) > 0:
                        for key, _ in sel.select(left):
                            ready = key.fileobj
                            assert isinstance(ready, socket.socket)
                            if is_closed(ready):
                                closed_at[ready] = time.monotonic()
                                sel.unregister(ready)
                    health, took = timed(lambda: client.get("/healthz"))
                    assert health.status_code == 200
                    assert took < PROMPT, took
            assert len(closed_at) == len(everyone)
            lifetimes = [closed_at[sock] - began[sock] for sock in everyone]
            assert min(lifetimes) > 0.8, lifetimes
            assert max(lifetimes) < 3.0, lifetimes
            assert shed(url, "header_timeout") == len(everyone)
            assert shed(url, "idle_evicted") == 0
        finally:
            close_all(everyone)


def test_when_every_connection_is_busy_a_new_one_is_refused_and_keepalive_idles_out(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """max_connections=16, all 16 busy with a request whose body the service is waiting for: one more connection
    is closed at once (over_limit) and no busy request is cut, all 16 then get their 201; a keep-alive connection
    left idle is closed after keepalive_timeout (1 s) and that is not counted as shedding."""
    config = bounded_config(tmp_path, max_connections=16, keepalive_timeout="1s")
    with serving(config, service_env(emulator, redis_url)) as (_proc, url):
        port = int(url.rsplit(":", 1)[1])
        head = (
            "POST /v1/tokens HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Authorization: {auth()['Authorization']}\r\nExpect: 100-continue\r\nContent-Length: 19\r\n\r\n"
        ).encode()
        busy = open_idle(port, 16)
        extra: list[socket.socket] = []
        try:
            for sock in busy:
                sock.send(head)
            for sock in busy:  # "100 Continue": the service is reading this request's body, so it is busy
                assert read_response(sock).startswith(b"HTTP/1.1 100"), "request not taken in"
            extra = open_idle(port, 1)
            assert wait_closed(extra, 1, timeout=5) == set(extra)
            assert not wait_closed(busy, 1, timeout=0.2)  # nobody busy was evicted for it
            for sock in busy:
                sock.send(b'{"profile":"voice"}')
            answers = [read_response(sock) for sock in busy]
            assert all(a.startswith(b"HTTP/1.1 201") for a in answers), answers
        finally:
            close_all(busy + extra)
        assert shed(url, "over_limit") >= 1

        keepalive = socket.create_connection(("127.0.0.1", port), timeout=5)
        keepalive.setblocking(False)
        keepalive.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(keepalive).startswith(b"HTTP/1.1 200")
        idle_from = time.monotonic()
        assert wait_closed([keepalive], 1, timeout=5)
        assert 0.8 < time.monotonic() - idle_from < 3
        keepalive.close()
        assert shed(url, "idle_evicted") == shed(url, "header_timeout") == 0


def test_a_replica_under_ulimit_256_flooded_with_400_idle_connections_keeps_serving(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """Under `ulimit -n 256` max_connections (4096) and the upstream warm-up (256 by default) are lowered to fit
    the open-files limit and say so at start-up; 400 silent connections then never exhaust the descriptors:
    /healthz keeps answering and a token is still issued."""
    port = free_port()
    config = with_default_warm_up(bounded_config(tmp_path, max_connections=4096))
    proc = ServiceProcess(
        ["serve", "--config", str(config), "--port", str(port)], service_env(emulator, redis_url), nofile=256
    )
    proc.start()
    url = f"http://127.0.0.1:{port}"
    flood: list[socket.socket] = []
    try:
        proc.wait_http(url + "/healthz")
        lowered = log_events(proc, "max_connections_lowered")
        assert lowered, proc.text[-2000:]
        bound = lowered[0]["effective"]
        assert bound == fd_ceiling(256, max_in_flight=256)  # [server] max_in_flight's default
        assert bound < 256
        warm = log_events(proc, "warm_connections_lowered")
        assert [(w["configured"], w["effective"]) for w in warm] == [(256, upstream_share(256, max_in_flight=256))]
        assert bound + warm[0]["effective"] <= 256 - FD_RESERVE  # callers and Google share what the reserve leaves
        with fresh_connections(url) as client:
            for _wave in range(4):
                flood += open_idle(port, 100)
                health, took = timed(lambda: client.get("/healthz"))
                assert health.status_code == 200
                assert took < PROMPT, took
            assert client.post("/v1/tokens", json={"profile": "voice"}, headers=auth()).status_code == 201
        assert len(wait_closed(flood, len(flood) - bound, timeout=10)) >= len(flood) - bound
        assert metric(url, "livetoken_open_connections") <= bound
        assert proc.proc is not None
        assert proc.proc.poll() is None
    finally:
        close_all(flood)
        proc.stop()


def test_a_body_that_stops_halfway_is_answered_400_at_the_request_deadline(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """request_timeout=3s: a caller that sends its headers and 10 of the 40 body bytes it declared gets the
    problem+json 400 "arrived too slowly" three seconds after it began, and Google saw no mint; a caller whose
    body came whole on the same process meanwhile gets its token at once."""
    config = bounded_config(tmp_path)
    with serving(config, service_env(emulator, redis_url)) as (_proc, url):
        port = int(url.rsplit(":", 1)[1])
        before = emulator.mint_count()
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.setblocking(False)
        head = (
            f"POST /v1/tokens HTTP/1.1\r\nHost: t\r\nAuthorization: {auth(sub='halfway')['Authorization']}\r\n"
            "Content-Type: application/json\r\nContent-Length: 40\r\n\r\n"
        )
        began = time.monotonic()
        sock.send(head.encode() + b'{"profile"')
        whole, took = timed(
            lambda: httpx.post(url + "/v1/tokens", json={"profile": "voice"}, headers=auth(sub="whole"), timeout=5)
        )
        answer = read_response(sock)
        waited = time.monotonic() - began
        sock.close()
    assert whole.status_code == 201
    assert took < 1.0, took
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 400"), answer
    assert b"content-type: application/problem+json" in status
    assert json.loads(body)["detail"] == "The request body arrived too slowly."
    assert 2.9 <= waited < 4.5, waited
    assert emulator.mint_count() - before == 1  # the whole caller's
