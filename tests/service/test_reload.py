"""Configuration reload without a restart, on a real `livetoken serve`: SIGHUP or a changed file swaps profiles,
limits, budgets, issuers and CORS origins between requests; a bad file is refused with check-config's message
and the running configuration stays; a request in flight finishes on the configuration it started with."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import ServiceProcess, livetoken_exe, serving
from tests.support.service import auth, service_env, write_config
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

EXTRA_PROFILE = """
[profiles.extra]
description = "Added by a reload."
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
"""


def _profiles(url: str) -> set[str]:
    resp = httpx.get(url + "/v1/profiles", headers=auth(sub="reader", scopes="live:tools"), timeout=10)
    return {p["name"] for p in resp.json()["profiles"]}


def _reloads(url: str, outcome: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    line = f'livetoken_config_reloads_total{{outcome="{outcome}"}} '
    return next((float(x.removeprefix(line)) for x in text.splitlines() if x.startswith(line)), 0.0)


def _events(proc: ServiceProcess, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.text.splitlines() if f'"{name}"' in line]


def test_sighup_swaps_in_a_new_profile_and_limits(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """A profile added and the subject limit cut to 1 per hour, then SIGHUP: the new profile is listed and
    issued, and the new limit refuses the second request; one `config_reloaded` line, the metric counts it."""
    config = write_config(tmp_path)
    with serving(config, service_env(emulator, redis_url)) as (proc, url):
        assert _profiles(url) == {"voice", "text", "tools"}
        text = write_config(tmp_path, 'subject = [{ rate = 1, period = "1h", burst = 1 }]').read_text()
        config.write_text(text + EXTRA_PROFILE)
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: _reloads(url, "ok") >= 1, "the reload is applied")
        assert _profiles(url) == {"voice", "text", "tools", "extra"}
        token = auth(sub="after-reload")
        first = httpx.post(url + "/v1/tokens", json={"profile": "extra"}, headers=token, timeout=10)
        second = httpx.post(url + "/v1/tokens", json={"profile": "extra"}, headers=token, timeout=10)
        time.sleep(1.5)  # the file watcher polls every second: give it the chance to reload the same change again
        reloads = _reloads(url, "ok")
    assert (first.status_code, second.status_code) == (201, 429)
    reloaded = _events(proc, "config_reloaded")
    # One change, one reload: by the signal, or by the watcher if it saw the file before the signal came.
    assert [(e["trigger"], e["profiles"]) for e in reloaded] in (
        [("sighup", ["extra", "text", "tools", "voice"])],
        [("file_changed", ["extra", "text", "tools", "voice"])],
    )
    assert reloads == 1


def test_a_changed_file_is_picked_up_without_a_signal(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """Only the file changes (as a ConfigMap update does): the watcher reloads it within seconds, a new profile
    and a new browser origin included."""
    config = write_config(tmp_path)
    preflight = {"Origin": "https://new.example", "Access-Control-Request-Method": "POST"}
    with serving(config, service_env(emulator, redis_url)) as (_proc, url):
        before = httpx.options(url + "/v1/tokens", headers=preflight, timeout=10)
        config.write_text(
            config.read_text() + EXTRA_PROFILE + '\n[server]\ncors_allow_origins = ["https://new.example"]\n'
        )
        wait_until(lambda: "extra" in _profiles(url), "the watcher applies the changed file")
        after = httpx.options(url + "/v1/tokens", headers=preflight, timeout=10)
    assert before.status_code == 403
    assert (after.status_code, after.headers["access-control-allow-origin"]) == (204, "https://new.example")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            lambda text: text + "\n[profiles.broken]\nmodel = 42\n",
            "profiles.broken.model: expected a string, got an integer",
            id="invalid-value",
        ),
        pytest.param(
            lambda text: text.replace("[upstream]", "[server]\nport = 9999\n\n[upstream]"),
            "server.port: changes only take effect after a restart",
            id="restart-only",
        ),
    ],
)
def test_a_bad_file_is_refused_and_the_running_config_stays(
    tmp_path: Path, emulator: Any, redis_url: str, change: Any, message: str
) -> None:
    """The refusal is logged with the message `check-config` prints for that file (when it is invalid), counted,
    and the service keeps answering on the configuration it had."""
    config = write_config(tmp_path)
    with serving(config, service_env(emulator, redis_url)) as (proc, url):
        config.write_text(change(config.read_text()))
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: _reloads(url, "refused") >= 1, "the reload is refused")
        assert _profiles(url) == {"voice", "text", "tools"}
        issued = httpx.post(url + "/v1/tokens", json={"profile": "voice"}, headers=auth(sub="still"), timeout=10)
    assert issued.status_code == 201
    refused = _events(proc, "config_reload_refused")
    assert refused
    assert refused[0]["error"] == message
    check = subprocess.run(
        [livetoken_exe(), "check-config", str(config)],
        env=service_env(emulator, redis_url),
        capture_output=True,
        text=True,
        check=False,
    )
    if "restart" not in message:
        assert check.stderr.strip() == f"livetoken: configuration error: {message}"


def test_a_request_in_flight_finishes_on_the_config_it_started_with(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """A voice mint waits on a 1.5 s upstream while a reload removes the voice profile: that request still gets
    its 201 token; the next voice request is 404."""
    config = write_config(tmp_path)
    with serving(config, service_env(emulator, redis_url)) as (proc, url):
        emulator.set_latency(1500)
        try:
            before = emulator.request_count()
            result: list[int] = []

            def call() -> None:
                resp = httpx.post(url + "/v1/tokens", json={"profile": "voice"}, headers=auth(sub="slow"), timeout=20)
                result.append(resp.status_code)

            thread = threading.Thread(target=call)
            thread.start()
            wait_until(lambda: emulator.request_count() > before, "the mint is waiting upstream")
            text = config.read_text()
            start = text.index("[profiles.voice]")
            end = text.index("[profiles.text]")
            config.write_text(text[:start] + text[end:])
            assert proc.proc is not None
            proc.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: _reloads(url, "ok") >= 1, "the reload is applied")
            thread.join(timeout=20)
        finally:
            emulator.clear_faults()
        after = httpx.post(url + "/v1/tokens", json={"profile": "voice"}, headers=auth(sub="later"), timeout=10)
    assert result == [201]
    assert after.status_code == 404


async def test_a_reload_with_the_same_issuers_keeps_their_verifier(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """Reloading a file whose issuers did not change keeps the running verifier (its JWKS caches and remembered
    tokens) while the flow takes the new profiles."""
    from tests.support.service import build_settings, running_app

    config = write_config(tmp_path)
    settings = build_settings(config, service_env(emulator, redis_url))
    async with running_app(settings) as client:
        runtime = client.app.state.runtime
        before = runtime.current
        config.write_text(config.read_text() + EXTRA_PROFILE)
        await runtime.reconfigure(build_settings(config, service_env(emulator, redis_url)))
        after = runtime.current
    assert after is not before
    assert after.verifier is before.verifier
    assert "extra" in after.settings.profiles
