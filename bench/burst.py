"""Bursts on a fresh process: N callers released in the same millisecond, each with its own new JWT and
connection, upstream +300 ms, Redis healthy. What issue #23 asks of admission: 1000 at once all get a token
with p99 under 2 s; 5000 at once, the excess is shed as `503 overloaded` fast, nothing waits past
`server.queue_timeout` + 1 s, and memory stays bounded.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from bench.procstat import peak_rss_mb, rss_mb
from tests.support.burst import Answer, post_request, release_together
from tests.support.redis_proc import free_port


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def _latencies(answers: list[Answer]) -> dict[str, float]:
    seconds = [a.seconds * 1000 for a in answers]
    if not seconds:
        return {}
    return {
        "p50_ms": round(statistics.median(seconds), 1),
        "p99_ms": round(_percentile(seconds, 99), 1),
        "max_ms": round(max(seconds), 1),
    }


def spawn_service(exe: str, config: Path, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`livetoken serve` on `port` as its own process (as `make run` starts it), its log written to `log`."""
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [exe, "serve", "--config", str(config), "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until `url` (a /readyz) answers 200: the process has filled its pools, not merely started."""
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited {proc.returncode}")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not turn ready")


async def burst_on_fresh_process(  # noqa: PLR0917 - one scenario's parts
    exe: str, config: Path, env: dict[str, str], log: Path, callers: int, token_for: Any
) -> dict[str, Any]:
    """Start a service process, wait for /readyz, release `callers` token requests at once, stop it."""
    port = free_port()
    host = f"127.0.0.1:{port}"
    requests = [
        post_request(
            "/v1/tokens",
            host,
            {"Authorization": f"Bearer {token_for(f'burst-{callers}-{i}')}", "Content-Type": "application/json"},
            b'{"profile": "voice"}',
        )
        for i in range(callers)
    ]
    proc = spawn_service(exe, config, port, env, log)
    try:
        wait_ready(f"http://{host}/readyz", proc)
        rss_before = rss_mb(proc.pid)
        started = time.perf_counter()
        answers = await release_together("127.0.0.1", port, requests)
        elapsed = time.perf_counter() - started
        peak = peak_rss_mb(proc.pid)
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://{host}/metrics", timeout=10)).text
    finally:
        proc.terminate()
        proc.wait(10)
    issued = [a for a in answers if a.status == 201]
    shed = [a for a in answers if a.status == 503 and str(a.body.get("type", "")).endswith("/overloaded")]
    other = len(answers) - len(issued) - len(shed)
    return {
        "callers": callers,
        "issued": len(issued),
        "shed_overloaded": len(shed),
        "other": other,
        "issued_latency": _latencies(issued),
        "shed_latency": _latencies(shed),
        "retry_after": sorted({a.headers.get("retry-after", "") for a in shed}),
        "seconds": round(elapsed, 2),
        "server_side": _admission_figures(metrics),
        "rss_mb_before": round(rss_before, 1),
        "peak_rss_mb": round(peak, 1),
    }


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _admission_figures(metrics: str) -> dict[str, Any]:
    """What the service itself measured: sheds by why, and how long the shed ones had been at admission."""
    shed = 'livetoken_admission_wait_seconds_bucket{{le="{le}",outcome="shed"}}'
    admitted = 'livetoken_admission_wait_seconds_bucket{{le="{le}",outcome="admitted"}}'
    return {
        "shed_by_why": {
            why: int(_sample(metrics, f'livetoken_admission_shed_total{{why="{why}"}}'))
            for why in ("queue_full", "wait_too_long", "timed_out")
        },
        "shed_within_50ms": int(_sample(metrics, shed.format(le="0.05"))),
        "shed_within_3s": int(_sample(metrics, shed.format(le="3.0"))),
        "shed_total": int(_sample(metrics, 'livetoken_admission_wait_seconds_count{outcome="shed"}')),
        "queued_admitted": int(_sample(metrics, 'livetoken_admission_wait_seconds_count{outcome="admitted"}')),
        "queued_admitted_within_2s": int(_sample(metrics, admitted.format(le="2.0"))),
    }


def burst_lines(results: list[dict[str, Any]], queue_timeout: float) -> list[str]:
    """The report's lines for the burst rows."""
    lines = []
    for r in results:
        issued, shed = r["issued_latency"], r["shed_latency"]
        line = (
            f"{r['callers']} callers at once, fresh process, +300 ms upstream: {r['issued']} tokens"
            + (
                f" (p50 {issued['p50_ms']:.0f} ms, p99 {issued['p99_ms']:.0f} ms, max {issued['max_ms']:.0f} ms)"
                if issued
                else ""
            )
            + f", {r['shed_overloaded']} x 503 overloaded"
            + (
                f" (p50 {shed['p50_ms']:.0f} ms, p99 {shed['p99_ms']:.0f} ms, max {shed['max_ms']:.0f} ms, "
                f"Retry-After {'/'.join(r['retry_after'])})"
                if shed
                else ""
            )
            + f", {r['other']} other; RSS {r['rss_mb_before']} -> peak {r['peak_rss_mb']} MB"
        )
        lines.append(line)
        server = r["server_side"]
        lines.append(
            f"  in the service: sheds by why {server['shed_by_why']}; {server['shed_within_50ms']} of "
            f"{server['shed_total']} shed within 50 ms of reaching admission, {server['shed_within_3s']} within "
            f"queue_timeout + 1 s; {server['queued_admitted']} waited in the queue and got a place, "
            f"{server['queued_admitted_within_2s']} of them within 2 s"
        )
        waited = max([issued.get("max_ms", 0.0), shed.get("max_ms", 0.0)])
        lines.append(
            f"  longest answer at the caller {waited:.0f} ms (bound: queue_timeout {queue_timeout:g} s + 1 s + the "
            "mint's 300 ms); caller-side times include the load generator's own CPU on the same 2 cores"
        )
    return lines
