"""`livetoken serve` with no configuration: dev mode, as `make run` starts it, driven as a user would."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ROOT, ServiceProcess, livetoken_exe
from tests.support.redis_proc import free_port


@pytest.fixture(scope="module")
def dev_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, str, Path]]:
    """A dev-mode service (with its emulator child) on a free port and a private state directory."""
    state = tmp_path_factory.mktemp("state")
    port = free_port()
    env = {"LIVETOKEN_STATE_DIR": str(state), "LIVETOKEN_CONFIG": "", "LIVETOKEN_LOG_FORMAT": "json"}
    proc = ServiceProcess(["serve", "--port", str(port)], env)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(url + "/healthz", timeout=60)
        yield proc, url, state
    finally:
        code = proc.stop()
        assert code == 0, proc.text


def _banner_line(text: str, start: str) -> str:
    for line in text.splitlines():
        if line.strip().startswith(start):
            return line.strip()
    raise AssertionError(f"no line starting with {start!r} in:\n{text}")


def test_dev_mode_prints_a_curl_line_that_works_when_pasted(dev_service: tuple[ServiceProcess, str, Path]) -> None:
    """The printed curl command, pasted into a shell as-is, returns a fresh token."""
    proc, url, state = dev_service
    line = _banner_line(proc.text, "curl ")
    assert url in line
    exe_dir = str(Path(livetoken_exe()).parent)
    result = subprocess.run(
        ["bash", "-c", line],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
        env={"PATH": f"{exe_dir}:/usr/bin:/bin", "LIVETOKEN_STATE_DIR": str(state)},
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r'"token":"auth_tokens/[^"]+"', result.stdout), result.stdout


def test_dev_jwt_and_token_over_http(dev_service: tuple[ServiceProcess, str, Path]) -> None:
    """`livetoken dev-jwt` makes a JWT the dev service accepts; the token comes from the emulator."""
    _proc, url, state = dev_service
    jwt_out = subprocess.run(
        [livetoken_exe(), "dev-jwt", "--sub", "alice", "--scope", "live:tools"],
        capture_output=True,
        text=True,
        env={"LIVETOKEN_STATE_DIR": str(state), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    token = jwt_out.stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    profiles = httpx.get(url + "/v1/profiles", headers=headers, timeout=10)
    assert {p["name"] for p in profiles.json()["profiles"]} == {"voice", "video", "text", "tools"}
    resp = httpx.post(url + "/v1/tokens", json={"profile": "tools"}, headers=headers, timeout=10)
    assert resp.status_code == 201, resp.text
    assert resp.json()["connect"]["base_url"].startswith("https://127.0.0.1:")
    ready = httpx.get(url + "/readyz", timeout=5).json()
    assert ready["rate_limiter_backend"] == "memory"


def test_dev_mode_warns_about_the_memory_limiter(dev_service: tuple[ServiceProcess, str, Path]) -> None:
    """Dev mode says it is dev mode and that the in-memory limiter is single-process only."""
    proc, _url, _state = dev_service
    assert "dev mode" in proc.text
    assert "in-memory" in proc.text.lower() or "memory" in proc.text.lower()
