"""`livetoken client` end to end with real processes: emulator, `livetoken serve` with Redis, and the client."""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.emulator.live_support import jpeg, png
from tests.support.emulator import EmulatorProcess
from tests.support.processes import ServiceProcess, livetoken_exe
from tests.support.redis_proc import free_port
from tests.support.service import make_jwt, service_env, write_config

CALC_PROFILE = """
[profiles.calc]
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
output_audio_transcription = true
presentation = "transcript"

[[profiles.calc.tools]]
name = "calculate"
description = "Evaluate arithmetic."
behavior = "blocking"
parameters = { type = "object", properties = { expression = { type = "string" } }, required = ["expression"] }

[profiles.clock]
model = "gemini-3.8-live"
output_audio_transcription = true
presentation = "transcript"

[[profiles.clock.tools]]
name = "get_current_time"
description = "Current date and time in UTC (gemini-3.8-live runs it non-blocking)."
"""


def start_service(tmp: Path, emulator: Any, redis_url: str, extra: str = CALC_PROFILE) -> tuple[ServiceProcess, str]:
    """`livetoken serve` on a free port with the test config and `extra` profiles (the calc profile's)."""
    config = write_config(tmp, 'subject = [{ rate = 1000, period = "1m", burst = 1000 }]', extra=extra)
    port = free_port()
    proc = ServiceProcess(["serve", "--config", str(config), "--port", str(port)], service_env(emulator, redis_url))
    proc.start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_http(url + "/healthz")
    return proc, url


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, emulator: Any, redis_server: Any) -> Iterator[str]:
    """The service, as operators run it, for the whole module."""
    proc, url = start_service(tmp_path_factory.mktemp("svc"), emulator, redis_server.url)
    yield url
    proc.stop()


def client(service: str, *args: str, jwt: str | None = None, ca: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `livetoken client` and capture what a user sees."""
    cmd = [livetoken_exe(), "client", "--service", service, "--jwt", jwt or make_jwt(sub="client-e2e"), *args]
    if ca:
        cmd += ["--ca-file", ca]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def speech_wav(path: Path, seconds: float = 1.5) -> None:
    """A spoken-like WAV: espeak-ng speech if installed, else a warbling 22.05 kHz stereo tone."""
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-w", str(path), "Hello, what time is it?"], check=True)
        return
    rate = 22_050
    frames = b"".join(
        struct.pack("<hh", v, v)
        for i in range(int(rate * seconds))
        for v in [int(9000 * math.sin(2 * math.pi * (220 + 80 * math.sin(i / 2000)) * i / rate))]
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


def test_audio_turn_saves_a_24khz_reply_and_token_is_single_use(service: str, emulator: Any, tmp_path: Path) -> None:
    """WAV in, reply WAV out (24 kHz mono, plausible length); --check passes; reusing the token is refused."""
    wav_in, wav_out = tmp_path / "in.wav", tmp_path / "reply.wav"
    speech_wav(wav_in)
    res = client(
        service,
        "--profile",
        "voice",
        "--input",
        str(wav_in),
        "--fast",
        "--output",
        str(wav_out),
        "--check",
        "--check-single-use",
        "--json",
        ca=emulator.ca_file,
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    with wave.open(str(wav_out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24_000, 1, 2)
        seconds = w.getnframes() / 24_000
    assert 0.5 <= seconds <= 4.0
    assert abs(seconds - summary["audio_seconds_received"]) < 0.01
    assert summary["turn_complete"] is True
    assert summary["input_transcript"]
    assert summary["output_transcript"].startswith("I heard")
    assert summary["second_connect_refused"] is True
    assert summary["token_fingerprint"].startswith("sha256:")
    assert "auth_tokens/" not in res.stdout + res.stderr


def test_text_turn_prints_the_answer(service: str, emulator: Any) -> None:
    """--text on the text profile (audio shown as its transcript) prints the model's words as its text, plays and
    saves nothing, and passes --check."""
    res = client(service, "--profile", "text", "--text", "hello there", "--check", "--json", ca=emulator.ca_file)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert (summary["presentation"], summary["text_received"]) == ("transcript", "You said: hello there")
    assert summary["turn_complete"] is True
    assert summary["audio_seconds_received"] > 0  # received, as Google sends it, and neither played nor saved
    human = client(service, "--profile", "text", "--text", "hello there", "--check", ca=emulator.ca_file)
    assert human.returncode == 0, human.stderr
    assert human.stdout == "model: You said: hello there\n"
    assert "(AUDIO, shown as its transcript)" in human.stderr
    assert "connected" in human.stderr


def test_function_call_is_answered_by_the_client(service: str, emulator: Any) -> None:
    """The model calls `calculate`; the client runs it, answers, and the reply uses the result."""
    res = client(service, "--profile", "calc", "--text", "calculate 6*7", "--check", "--json", ca=emulator.ca_file)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["tool_calls"] == [
        {"name": "calculate", "args": {"expression": "6*7"}, "result": {"result": 42}, "non_blocking": False}
    ]
    assert summary["text_received"] == 'calculate returned {"result": 42}.'


def test_a_non_blocking_call_is_answered_and_its_result_awaited(service: str, emulator: Any) -> None:
    """gemini-3.8-live runs get_current_time non-blocking: the model goes on ("Checking …"), the client answers
    WHEN_IDLE without stopping, and the run ends only after the model has spoken the result."""
    res = client(service, "--profile", "clock", "--text", "get_current_time", "--check", "--json", ca=emulator.ca_file)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    [call] = summary["tool_calls"]
    assert (call["name"], call["args"], call["non_blocking"]) == ("get_current_time", {}, True)
    result = json.dumps(call["result"], sort_keys=True)
    assert summary["text_received"] == f"Checking get_current_time.get_current_time returned {result}."
    human = client(service, "--profile", "clock", "--text", "get_current_time", "--check", ca=emulator.ca_file)
    assert human.returncode == 0, human.stderr
    assert "turn complete; waiting for the model to speak the tool's result" in human.stderr
    lines = human.stdout.splitlines()
    assert lines[0] == "model: Checking get_current_time."
    assert lines[1].startswith('model: get_current_time returned {"utc": "')


def test_image_frame_with_a_text_turn(service: str, emulator: Any, tmp_path: Path) -> None:
    """--image photo.jpg --text: one JPEG frame goes before the turn and the answer counts it."""
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg())
    res = client(
        service, "--profile", "text", "--image", str(photo), "--text", "what is this?", "--check", ca=emulator.ca_file
    )
    assert res.returncode == 0, res.stderr
    assert "model: I saw 1 frame. You said: what is this?\n" in res.stdout
    assert f"sent image 1 as a video frame (image/jpeg, {len(jpeg())} bytes)" in res.stderr
    assert emulator.sessions()[-1]["frames"] == 1


def test_png_frames_with_an_audio_turn(service: str, emulator: Any, tmp_path: Path) -> None:
    """Two --image PNGs with a spoken turn: both frames are sent as image/png and the spoken answer counts them."""
    wav_in, screen = tmp_path / "in.wav", tmp_path / "screen.png"
    speech_wav(wav_in)
    screen.write_bytes(png())
    res = client(
        service,
        "--profile",
        "voice",
        "--input",
        str(wav_in),
        "--fast",
        "--image",
        str(screen),
        "--image",
        str(screen),
        "--check",
        "--json",
        ca=emulator.ca_file,
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["frames_sent"] == 2
    assert summary["output_transcript"].startswith("I saw 2 frames and heard ")
    assert emulator.sessions()[-1]["frames"] == 2


def test_a_file_that_is_not_an_image_is_refused_before_any_token(tmp_path: Path) -> None:
    """--image notes.txt: exit 2 with one clear line, and no token is requested (the service is not even up)."""
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    res = client(f"http://127.0.0.1:{free_port()}", "--profile", "text", "--image", str(notes), "--text", "hi")
    assert res.returncode == 2
    assert res.stderr == f"livetoken client: {notes}: not a JPEG or PNG image\n"


@pytest.mark.parametrize(
    ("args", "jwt", "needle"),
    [
        (["--profile", "voice"], "not-a-jwt", "HTTP 401"),
        (["--profile", "nope"], None, "HTTP 404"),
        (["--profile", "tools"], None, "HTTP 403"),
    ],
)
def test_refusals_are_explained(service: str, args: list[str], jwt: str | None, needle: str) -> None:
    """401/403/404 from the service: exit 3 and one line with the server's explanation."""
    res = client(service, *args, "--text", "hi", jwt=jwt)
    assert res.returncode == 3
    assert needle in res.stderr


def test_unreachable_service_is_explained() -> None:
    """Nothing listening: exit 3 with a clear line, no traceback."""
    res = client(f"http://127.0.0.1:{free_port()}", "--profile", "text", "--text", "hi")
    assert res.returncode == 3
    assert "cannot reach the token service" in res.stderr
    assert "Traceback" not in res.stderr


def test_resumes_after_go_away(tmp_path: Path, redis_url: str) -> None:
    """The server sends goAway and closes mid-turn; the client resumes with its handle and completes the turn."""
    emu = EmulatorProcess(tmp_path, "--speed", "1")
    emu.start()
    proc, url = start_service(tmp_path, emu, redis_url)
    try:
        wav_in = tmp_path / "in.wav"
        speech_wav(wav_in, seconds=1.5)

        def go_away_soon() -> None:
            deadline = time.monotonic() + 30
            while emu.admin("GET", "/stats")["open_sessions"] == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # mid-turn: the client is still streaming its 1.5 s of audio
            emu.admin("POST", "/goaway", json={"time_left_seconds": 0.1})

        threading.Thread(target=go_away_soon, daemon=True).start()
        res = client(
            url, "--profile", "voice", "--input", str(wav_in), "--realtime", "--check", "--json", ca=emu.ca_file
        )
        sessions = emu.sessions()
    finally:
        proc.stop()
        emu.stop()
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["resumptions"] == 1
    assert summary["turn_complete"] is True
    assert [s["resumed"] for s in sessions] == [False, True]


def tone_wav(path: Path, seconds: float) -> None:
    """`seconds` of a steady tone, 16 kHz mono PCM16: one long utterance to the emulator (speech by loudness)."""
    rate = 16_000
    samples = (round(9000 * math.sin(2 * math.pi * 300 * i / rate)) for i in range(int(seconds * rate)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))


RESUME_PROFILES = """
[profiles.noresume]
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
session_resumption = false
new_session_ttl = "1s"
"""


def short_lived_setup(
    tmp: Path, redis_url: str, connection_seconds: str
) -> tuple[EmulatorProcess, ServiceProcess, str]:
    """An emulator whose connections last `connection_seconds` (goAway 1 s before) and answers at once (speed
    0, so a reply is never what a connection cuts), and the service on it with the test profiles."""
    emu = EmulatorProcess(tmp, "--speed", "0", "--max-connection-seconds", connection_seconds, "--goaway-lead", "1")
    emu.start()
    proc, url = start_service(tmp, emu, redis_url, extra=RESUME_PROFILES)
    return emu, proc, url


def test_a_long_utterance_goes_on_across_three_reconnections(tmp_path: Path, redis_url: str) -> None:
    """A 10 s utterance spoken in real time over connections that last 3 s: each connection goes on from where
    the last one stopped (the input is never sent twice), the client resumes with its newest handle each time,
    and the one turn the emulator hears at the end is answered. It used to give up after five resumptions."""
    emu, proc, url = short_lived_setup(tmp_path, redis_url, "3")
    try:
        wav_in = tmp_path / "long.wav"
        tone_wav(wav_in, 10.0)
        before = emu.mint_count()
        args = ("--profile", "voice", "--input", str(wav_in), "--realtime", "--check", "--json")
        res = client(url, *args, ca=emu.ca_file)
        sessions = emu.sessions()
        minted = emu.mint_count() - before
    finally:
        proc.stop()
        emu.stop()
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["turn_complete"] is True
    assert summary["audio_bytes_received"] > 0
    assert summary["resumptions"] >= 3
    assert summary["resumptions"] == len(sessions) - 1
    assert summary["fresh_tokens"] == 0
    assert [s["resumed"] for s in sessions] == [False] + [True] * (len(sessions) - 1)
    assert len({s["token"] for s in sessions}) == 1  # one token, one session, many connections
    assert minted == 1
    assert abs(sum(s["audio_seconds"] for s in sessions) - 10.0) < 0.1  # nothing sent twice
    assert abs(summary["audio_seconds_sent"] - 10.0) < 0.1
    # One turn, heard once, by the last connection: the earlier ones carried the beginning of the utterance.
    assert [len(s["turns_heard"]) for s in sessions] == [0] * (len(sessions) - 1) + [1]


def test_a_new_session_after_the_tokens_window_fetches_a_fresh_token(tmp_path: Path, redis_url: str) -> None:
    """A profile without session resumption whose tokens open sessions within 1 s: the connection ends after
    2.5 s, there is no handle to resume with and the token's new-session window has passed, so the client fetches a
    fresh token from livetoken for the same profile, says so, and goes on in a new session from where the audio
    was; Google saw two mints and two sessions, one per token."""
    emu, proc, url = short_lived_setup(tmp_path, redis_url, "2.5")
    try:
        wav_in = tmp_path / "utterance.wav"
        tone_wav(wav_in, 4.0)
        before = emu.mint_count()
        res = client(url, "--profile", "noresume", "--input", str(wav_in), "--realtime", "--check", ca=emu.ca_file)
        sessions = emu.sessions()
        minted = emu.mint_count() - before
    finally:
        proc.stop()
        emu.stop()
    assert res.returncode == 0, res.stderr  # --check: a complete turn with audio came back
    assert minted == 2
    assert [s["resumed"] for s in sessions] == [False, False]
    assert len({s["token"] for s in sessions}) == 2
    assert abs(sum(s["audio_seconds"] for s in sessions) - 4.0) < 0.1
    lines = res.stderr.splitlines()
    assert any(
        "the token can no longer open or resume this session (Unauthenticated: new session window of this ephemeral "
        "token has passed); fetching a fresh one" in line
        for line in lines
    ), res.stderr
    assert any("a new session, which does not remember the old one" in line for line in lines)
    assert any("going on with the audio from 2." in line for line in lines)


def test_a_token_request_over_the_limit_is_tried_again_after_retry_after(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """One token per 2 s for a subject: the second run meets `429 rate-limited` with Retry-After, says how long it
    waits, waits it, and then talks; the service answered 201 twice and 429 once, and Google saw two mints."""
    config = write_config(tmp_path, 'subject = [{ rate = 1, period = "2s", burst = 1 }]')
    port = free_port()
    proc = ServiceProcess(["serve", "--config", str(config), "--port", str(port)], service_env(emulator, redis_url))
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(url + "/healthz")
        jwt = make_jwt(sub="patient-caller")
        before = emulator.mint_count()
        first = client(url, "--profile", "text", "--text", "hi", "--check", jwt=jwt, ca=emulator.ca_file)
        started = time.monotonic()
        second = client(url, "--profile", "text", "--text", "hi again", "--check", jwt=jwt, ca=emulator.ca_file)
        took = time.monotonic() - started
        minted = emulator.mint_count() - before
        metrics = httpx.get(url + "/metrics", timeout=10).text
    finally:
        proc.stop()
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    waits = [line for line in second.stderr.splitlines() if "trying again in" in line]
    assert len(waits) == 1, second.stderr
    assert "token request refused: HTTP 429 — rate limited" in waits[0]
    assert waits[0].endswith(("trying again in 1s", "trying again in 2s"))
    assert took >= 1.0  # it did wait before trying again
    assert minted == 2
    answered = {
        status: f'livetoken_http_requests_total{{method="POST",route="/v1/tokens",status="{status}"}} {count}'
        for status, count in (("201", 2.0), ("429", 1.0))
    }
    assert all(line in metrics for line in answered.values()), [m for m in metrics.splitlines() if "tokens" in m]
