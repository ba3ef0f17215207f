"""`make bench` itself: a small run of the real harness completes and writes every figure the README reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_small_benchmark_run_reports_every_scenario(tmp_path: Path) -> None:
    """All scenarios answer with the status they exercise and no transport errors; the JSON holds CPU per
    request, ratios, latency, the server comparison, RSS and Redis bytes per subject."""
    small = ("--requests", "400", "--slow-requests", "400", "--bursts", "300", "--out", str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "bench", *small],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads((tmp_path / "latest.json").read_text())
    expected = {
        "baseline": "201",
        "issue": "201",
        "issue_traced": "201",
        "issue_traced_1pct": "201",
        "issue_known_jwt": "201",
        "issue_via_proxy": "201",
        "reject_401": "401",
        "preflight": "204",
        "reject_429": "429",
        "reject_429_fresh_jwt": "429",
        "growth_1_subject": "201",
        "growth_100k_subjects": "201",
        "slow_upstream": "201",
        "slow_upstream_lockstep": "201",
        "slow_upstream_lockstep_warm": "201",
    }
    for key, status in expected.items():
        figures = out[key]
        assert list(figures["statuses"]) == [status], (key, figures["statuses"])
        assert figures["errors"] == 0
        assert figures["cpu_ms_per_request"] > 0
        assert figures["p99_ms"] >= figures["p50_ms"] > 0
    assert out["issue"]["ratio_to_baseline"] > 1  # a token costs more than the bare endpoint's echo
    assert out["issue_traced"]["spans_per_token"] >= 10  # every step's span reached the OTLP receiver
    assert out["issue_via_proxy"]["tunnels"] >= 1  # the proxied service's mints went through proxy.py
    for key in ("reject_401", "reject_429", "reject_429_fresh_jwt"):
        assert out[key]["ratio_to_baseline"] > 0
    # 300 ms of upstream latency is visible in every issued token's latency.
    assert out["slow_upstream"]["p50_ms"] >= 300
    assert set(out["servers"]) == {"uvicorn", "service", "uvicorn-asyncio-h11", "granian"}
    assert out["baseline_server"].startswith("stock uvicorn + uvloop + httptools")  # the yardstick issue #16 names
    assert len(out["baseline"]["cpu_ms_by_reading"]) == 2 * out["rounds"] == 6
    for key in ("issue", "issue_browser", "reject_401", "preflight", "reject_429", "reject_429_fresh_jwt"):
        ratios = out[key]["ratios_by_round"]
        assert len(ratios) == 3
        assert abs(out[key]["ratio_to_baseline"] - sorted(ratios)[1]) <= 0.01  # the median round
    assert 0 < out["service_peak_rss_mb"] < 1024
    assert 50 < out["redis_bytes_per_subject"] < 2000
    assert "issued token" in done.stdout
    assert "granian" in done.stdout
    assert "issued token CPU / bare endpoint CPU" in done.stdout  # the targets summary, as issue #16's ratios
    assert "CORS preflight CPU / 401 CPU" in done.stdout
    cold = out["cold_start"]
    for wave in ("first_wave", "second_wave"):
        assert cold[wave]["statuses"] == {"201": 200}, cold[wave]
        assert cold[wave]["p50_ms"] >= 300  # each caller waited for the slow upstream once
    # The new process filled its upstream pool before /readyz (upstream.warm_connections, 256 by default).
    assert cold["upstream_connections_ready_first_second"][0] >= 200
    assert cold["p99_ratio"] == round(cold["first_wave"]["p99_ms"] / cold["second_wave"]["p99_ms"], 3)
    assert out["machine"]["cpus"] >= 1
    (burst,) = out["bursts"]  # 300 callers at once on a fresh process: beyond the 256 places, all wait their turn
    assert (burst["callers"], burst["issued"], burst["shed_overloaded"], burst["other"]) == (300, 300, 0, 0)
    assert 1 <= burst["server_side"]["queued_admitted"] <= 300 - 256
    assert "300 callers at once, fresh process" in done.stdout
