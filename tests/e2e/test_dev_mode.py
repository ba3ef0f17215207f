"""`livetoken serve` with no configuration: dev mode, as `make run` starts it, driven as a user would."""

from __future__ import annotations

import json
import math
import re
import struct
import subprocess
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.emulator.live_support import jpeg
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
    assert {p["name"] for p in profiles.json()["profiles"]} == {"voice", "video", "text", "tools", "thinking"}
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


def _client(url: str, state: Path, *args: str) -> dict[str, Any]:
    """`livetoken client --json` against dev mode, as a user runs it; its summary."""
    jwt = subprocess.run(
        [livetoken_exe(), "dev-jwt", "--sub", "prober", "--scope", "live:tools"],
        capture_output=True,
        text=True,
        env={"LIVETOKEN_STATE_DIR": str(state), "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout.strip()
    res = subprocess.run(
        [livetoken_exe(), "client", "--service", url, "--jwt", jwt, "--check", "--json", *args],
        capture_output=True,
        text=True,
        env={"LIVETOKEN_STATE_DIR": str(state), "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr + res.stdout
    summary: dict[str, Any] = json.loads(res.stdout)
    return summary


def test_every_shipped_profile_opens_a_session_that_keeps_its_promise(
    dev_service: tuple[ServiceProcess, str, Path], tmp_path: Path
) -> None:
    """The Python SDK (the reference client) on each dev-mode profile, all on today's models: voice and thinking
    answer speech with audio and transcripts, video counts the frame, text comes back as a transcript, tools calls
    the non-blocking clock and the blocking calculator."""
    _proc, url, state = dev_service
    wav = tmp_path / "hello.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        tone = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 16_000))) for i in range(16_000))
        out.writeframes(tone)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg())
    runs = {
        "voice": ("--profile", "voice", "--input", str(wav), "--fast"),
        "thinking": ("--profile", "thinking", "--input", str(wav), "--fast"),
        "video": ("--profile", "video", "--image", str(photo), "--text", "what is this?"),
        "text": ("--profile", "text", "--text", "Hello there"),
        "calc": ("--profile", "tools", "--text", "calculate 6*7"),
        "clock": ("--profile", "tools", "--text", "get_current_time"),
    }
    with ThreadPoolExecutor(len(runs)) as pool:  # the replies are paced like speech: run the callers side by side
        done = {name: pool.submit(_client, url, state, *args) for name, args in runs.items()}
        summary = {name: future.result() for name, future in done.items()}
    for profile, model in (("voice", "gemini-3.8-live"), ("thinking", "gemini-3.8-live-extended-thinking")):
        spoken = summary[profile]
        assert (spoken["model"], spoken["presentation"]) == (model, "voice"), profile
        assert spoken["audio_bytes_received"] > 0, profile
        assert spoken["input_transcript"] == "(1.0 seconds of audio)", profile
        assert spoken["output_transcript"] == "I heard 1.0 seconds of audio.", profile
    video, text, calc, clock = summary["video"], summary["text"], summary["calc"], summary["clock"]
    assert video["output_transcript"] == "I saw 1 frame. You said: what is this?"
    assert video["audio_bytes_received"] > 0
    assert (text["presentation"], text["text_received"]) == ("transcript", "You said: Hello there")
    assert calc["tool_calls"] == [
        {"name": "calculate", "args": {"expression": "6*7"}, "result": {"result": 42}, "non_blocking": False}
    ]
    assert calc["output_transcript"] == 'calculate returned {"result": 42}.'
    [call] = clock["tool_calls"]
    assert (call["name"], call["non_blocking"]) == ("get_current_time", True)
    result = json.dumps(call["result"], sort_keys=True)
    assert clock["output_transcript"] == f"Checking get_current_time.get_current_time returned {result}."
