"""Faults the service meets in production: a failing upstream, slow or hostile clients, shutdown under load."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import ServiceProcess, serving
from tests.support.redis_proc import free_port
from tests.support.service import auth, build_settings, make_jwt, running_app, service_env, write_config
from tests.support.waiting import until, wait_until

CIRCUIT = """
[upstream]
attempt_timeout = "2s"
deadline = "3s"
max_retries = 0
circuit_failure_threshold = 3
circuit_reset_after = "1s"
"""


async def test_circuit_breaker_opens_fails_fast_and_closes_after_a_probe(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """Three upstream failures open the circuit: fast 503 + Retry-After, no upstream calls; a good probe closes it."""
    config = write_config(tmp_path)
    config.write_text(
        config.read_text().replace(
            '[upstream]\nattempt_timeout = "2s"\ndeadline = "3s"\nmax_retries = 2\n'
            'backoff_base = "20ms"\ncircuit_failure_threshold = 50\n'
            'circuit_reset_after = "1s"\n',
            CIRCUIT,
        )
    )
    settings = build_settings(config, service_env(emulator, redis_url))
    assert settings.file.upstream.circuit_failure_threshold == 3
    async with running_app(settings) as client:
        emulator.fail_next(503, 503, 503)
        for _ in range(3):
            assert (await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())).status_code == 503
        calls = emulator.request_count()
        fast = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())
        ready = (await client.get("/readyz")).json()
        assert emulator.request_count() == calls  # refused without calling upstream

        async def circuit_lets_a_probe_through() -> bool:
            return bool((await client.get("/readyz")).json()["upstream_circuit"] != "open")

        await until(circuit_lets_a_probe_through, "the circuit's reset time has passed")
        probe = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())
        after = (await client.get("/readyz")).json()
        metrics = (await client.get("/metrics")).text
    assert fast.status_code == 503
    assert int(fast.headers["retry-after"]) >= 1
    assert ready["upstream_circuit"] == "open"
    assert probe.status_code == 201
    assert after["upstream_circuit"] == "closed"
    assert "livetoken_upstream_circuit_open 0.0" in metrics


async def test_slow_upstream_does_not_delay_an_unrelated_rejection(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """While a mint waits on a 1.5 s upstream, a bad-JWT request is answered first (nothing blocks the loop)."""
    order: list[str] = []
    with serving(write_config(tmp_path), service_env(emulator, redis_url)) as (_proc, url):
        emulator.set_latency(1500)
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:

            async def slow() -> None:
                resp = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())
                order.append(f"mint-{resp.status_code}")

            before: int = emulator.request_count()

            async def mint_is_waiting_upstream() -> bool:
                count: int = await asyncio.to_thread(emulator.request_count)
                return count > before

            async def reject() -> None:
                await until(mint_is_waiting_upstream, "the mint reached the slow upstream")
                resp = await client.post("/v1/tokens", json={"profile": "voice"}, headers={"Authorization": "Bearer x"})
                order.append(f"reject-{resp.status_code}")

            await asyncio.gather(slow(), reject())
    assert order == ["reject-401", "mint-201"]


def _raw(port: int, payload: bytes, *, trickle: bool = False, timeout: float = 15.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if trickle:
            head, body = payload.split(b"\r\n\r\n", 1)
            sock.sendall(head + b"\r\n\r\n")
            for byte in body[:3]:
                sock.sendall(bytes([byte]))
                time.sleep(0.5)
        else:
            sock.sendall(payload)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def test_hostile_http_is_refused_in_bounded_time(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """Oversized headers, a huge declared body and a trickled body each get a 4xx quickly, never a 5xx."""
    config = write_config(tmp_path, extra="")
    text = config.read_text().replace("[upstream]", '[server]\nrequest_timeout = "1s"\n\n[upstream]')
    config.write_text(text)
    port = free_port()
    proc = ServiceProcess(["serve", "--config", str(config), "--port", str(port)], service_env(emulator, redis_url))
    proc.start()
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz")
        jwt = make_jwt(sub="hostile")
        base = (
            f"POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {jwt}\r\nContent-Type: application/json\r\n"
        )
        cases = {
            "huge header": (base + "X-Junk: " + "a" * 200_000 + "\r\nContent-Length: 2\r\n\r\n{}").encode(),
            "huge declared body": (base + "Content-Length: 999999999\r\n\r\n{").encode(),
            "trickled body": (base + 'Content-Length: 20\r\n\r\n{"profile": "voice"}').encode(),
        }
        for name, payload in cases.items():
            started = time.monotonic()
            answer = _raw(port, payload, trickle=name == "trickled body")
            elapsed = time.monotonic() - started
            status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1") else 0
            assert 400 <= status < 500 or (status == 0 and name == "huge header"), (name, answer[:200])
            assert elapsed < 5, (name, elapsed)
    finally:
        proc.stop()
    assert "unhandled_error" not in proc.text


def test_sigterm_lets_in_flight_requests_finish_and_refuses_new_ones(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """SIGTERM during slow mints: in-flight requests complete with 201, the port stops accepting, exit code 0."""
    port = free_port()
    proc = ServiceProcess(
        ["serve", "--config", str(write_config(tmp_path)), "--port", str(port)], service_env(emulator, redis_url)
    )
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(url + "/healthz")
        emulator.set_latency(1200)
        results: list[int] = []

        def call() -> None:
            resp = httpx.post(url + "/v1/tokens", json={"profile": "voice"}, headers=auth(sub="inflight"), timeout=20)
            results.append(resp.status_code)

        before = emulator.request_count()
        threads = [threading.Thread(target=call) for _ in range(5)]
        for t in threads:
            t.start()
        wait_until(lambda: emulator.request_count() - before == 5, "all five mints are waiting on the upstream")
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)

        def port_closed() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return False
            except OSError:
                return True

        wait_until(port_closed, "the port stops accepting new connections")
        refused = not results  # closed while the five were still in flight
        for t in threads:
            t.join(timeout=20)
        code = proc.stop(timeout=20)
    finally:
        emulator.clear_faults()
        proc.stop()
    assert results == [201] * 5
    assert refused
    assert code == 0
    assert "service_stopped" in proc.text
