"""Tracing off (the default): no OpenTelemetry machinery is loaded or run, and nothing is sent to Google."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.processes import ROOT
from tests.support.service import service_env, write_config

SCRIPT = """
import asyncio, json, os, sys, threading
from litestar.testing import AsyncTestClient
from service.app import create_app
from service.config import load_settings
from tests.support.service import auth

async def main():
    app = create_app(load_settings(sys.argv[1], os.environ))
    called, flow, watching = set(), [0], [False]

    def profile(frame, event, arg):  # every Python call, in this thread and the test client's
        if watching[0] and event == "call":
            name = frame.f_code.co_filename
            if "opentelemetry" in name:
                called.add(name + ":" + frame.f_code.co_name)
            flow[0] += "issuing/flow.py" in name

    threading.setprofile(profile)
    sys.setprofile(profile)
    async with AsyncTestClient(app=app, base_url="http://livetoken.test") as client:
        headers = {**auth(), "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
        watching[0] = True
        resp = await client.post("/v1/tokens", json={"profile": "voice"}, headers=headers)
        watching[0] = False
    out = {"status": resp.status_code, "modules": sorted(sys.modules), "called": sorted(called), "flow_calls": flow[0]}
    print(json.dumps(out))

asyncio.run(main())
"""

# What livetoken's tracing loads: its OpenTelemetry module, the SDK's tracer and exporter, the client
# instrumentations. (With the extra installed, Litestar imports its own OpenTelemetry plugin and redis-py parts of
# the metrics SDK when they are imported; neither runs any of it unless asked.)
TRACING_MODULES = (
    "service.tracing.otel",
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter",
    "opentelemetry.instrumentation.httpx",
    "opentelemetry.instrumentation.redis",
)


def test_off_a_token_request_loads_no_tracing_and_sends_no_traceparent(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """Without OTEL_* configuration a token request (even one carrying a traceparent) is served without livetoken's
    tracing loaded and without calling one OpenTelemetry function, and Google receives no traceparent."""
    env = {**os.environ, **service_env(emulator, redis_url), "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(write_config(tmp_path))],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 201
    loaded = [m for m in result["modules"] if m.startswith(TRACING_MODULES)]
    assert loaded == []
    assert result["flow_calls"] > 0  # the hook saw the request
    assert result["called"] == []
    assert emulator.last_request()["traceparent"] is None
