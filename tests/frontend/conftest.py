"""Fixtures for the frontend tests: the built example, dev mode serving it, and Node and Chromium set up like a user's.

One dev-mode service (with its emulator) serves every frontend test of the session; the example is built at most
once (by scripts/ensure-browser-deps, only when a source is newer than the build).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import subprocess
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest

from service import devmode
from tests.support.processes import ROOT, ServiceProcess
from tests.support.redis_proc import free_port

EXAMPLE_DIR = ROOT / "examples" / "browser"
FRONTEND_TESTS = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
MIC_RATE = 48_000
MIC_TONE_SECONDS = 0.8  # a tone is what the emulator hears as speech (RMS over its silence threshold)
MIC_SILENCE_SECONDS = 4.2  # then silence: 0.6 s of it ends the turn; the rest lets the answer play out


JWT_SHAPE = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


TOKEN_SHAPE = re.compile(r"auth_tokens/[\w-]+")


def masked(text: str, *secrets: str) -> str:
    """`text` fit for a test report: JWTs, ephemeral tokens and the given secrets replaced."""
    for secret in secrets:
        text = text.replace(secret, "<secret>")
    return TOKEN_SHAPE.sub("auth_tokens/<token>", JWT_SHAPE.sub("<jwt>", text))


def wait_until_serving(proc: ServiceProcess, url: str) -> None:
    """Wait for /healthz; on failure show the process output masked (dev mode prints a demo URL with a JWT)."""
    try:
        proc.wait_http(url + "/healthz")
    except AssertionError as exc:
        raise AssertionError(masked(str(exc))) from None


@dataclass(frozen=True)
class DevService:
    """`livetoken serve --demo-dir examples/browser/dist` in dev mode, and its emulator."""

    url: str
    state_dir: Path
    emulator: devmode.EmulatorInfo

    def caller_jwt(self, subject: str, *scopes: str) -> str:
        """A caller JWT from the dev issuer (what `livetoken dev-jwt --sub SUBJECT --scope …` prints)."""
        return devmode.mint_dev_jwt(self.state_dir, subject, list(scopes), ttl=900.0)


def run_quietly(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 300) -> None:
    """Run a set-up command; on failure, fail the test with its output (these commands print no secrets)."""
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")


@pytest.fixture(scope="session")
def example_dist() -> Path:
    """examples/browser built and its dependencies installed (idempotent; `make test` has done it already)."""
    run_quietly([str(ROOT / "scripts" / "ensure-browser-deps")])
    return EXAMPLE_DIR / "dist"


@pytest.fixture(scope="session")
def dev_service(example_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevService]:
    """Dev mode on a free port with its own state directory, serving the built page at /demo/."""
    state_dir = tmp_path_factory.mktemp("dev-state")
    port = free_port()
    proc = ServiceProcess(
        ["serve", "--port", str(port), "--demo-dir", str(example_dist)],
        {"LIVETOKEN_STATE_DIR": str(state_dir), "LIVETOKEN_LOG_FORMAT": "json"},
    )
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, url)
        emulator = devmode.read_emulator_info(state_dir)
        assert emulator is not None, "dev mode wrote no emulator.json"
        yield DevService(url, state_dir, emulator)
    finally:
        proc.stop()


LATE_SECRET = "frontend-test-issuer-secret-long-enough-0123456789"  # a throwaway test issuer
LATE_CONFIG = """
[server]
cors_allow_origins = ["{dev_origin}"]

[[issuers]]
issuer = "frontend-tests"
audiences = ["livetoken"]
algorithms = ["HS256"]
hs256_secret_env = "FRONTEND_TEST_ISSUER_SECRET"

[profiles.late]
description = "One second to start the session."
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
output_audio_transcription = true
presentation = "transcript"
new_session_ttl = "1s"

[profiles.single]
description = "Text replies; no session resumption: a connection that ends takes its session with it."
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
output_audio_transcription = true
presentation = "transcript"
session_resumption = false
"""


@dataclass(frozen=True)
class LateService:
    """A configured livetoken (same emulator, CORS open to dev mode's page) whose `late` profile gives a token 1 s to
    open its session, and whose `single` profile has no session resumption."""

    url: str
    jwt: str


@pytest.fixture(scope="session")
def late_service(dev_service: DevService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LateService]:
    """`livetoken serve --config` with the `late` and `single` profiles, minting from dev mode's emulator."""
    config = tmp_path_factory.mktemp("late") / "livetoken.toml"
    config.write_text(LATE_CONFIG.replace("{dev_origin}", dev_service.url))
    port = free_port()
    proc = ServiceProcess(
        ["serve", "--config", str(config), "--port", str(port)],
        {
            "FRONTEND_TEST_ISSUER_SECRET": LATE_SECRET,
            "LIVETOKEN_GEMINI_API_KEY": dev_service.emulator.api_key,
            "LIVETOKEN_GEMINI_BASE_URL": dev_service.emulator.base_url,
            "LIVETOKEN_GEMINI_CA_FILE": dev_service.emulator.ca_file,
            "LIVETOKEN_LOG_FORMAT": "json",
        },
    )
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, url)
        now = int(time.time())
        claims = {"iss": "frontend-tests", "aud": "livetoken", "sub": "late-caller", "iat": now, "exp": now + 900}
        yield LateService(url, jwt.encode(claims, LATE_SECRET, algorithm="HS256"))
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def browser_home(dev_service: DevService, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME whose NSS database trusts the emulator's CA, made with the commands the README gives developers."""
    home = tmp_path_factory.mktemp("browser-home")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    certutil = shutil.which("certutil")
    assert certutil is not None, "certutil is missing: run scripts/ensure-browser-deps (make test does)"
    run_quietly([certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"])
    ca = dev_service.emulator.ca_file
    run_quietly([certutil, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "livetoken-emulator", "-i", ca])
    return home


@pytest.fixture(scope="session")
def microphone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What Chromium's fake microphone plays, looped: a 440 Hz tone (a spoken turn to the emulator), then silence."""
    path = tmp_path_factory.mktemp("mic") / "speech.wav"
    tone = int(MIC_TONE_SECONDS * MIC_RATE)
    ramp = MIC_RATE // 100  # 10 ms fade in and out, no clicks
    samples = [
        int(16_000 * min(1.0, i / ramp, (tone - i) / ramp) * math.sin(2 * math.pi * 440 * i / MIC_RATE))
        for i in range(tone)
    ]
    samples += [0] * int(MIC_SILENCE_SECONDS * MIC_RATE)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(MIC_RATE)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return path


def run_node(
    args: list[str], *, stdin: dict[str, Any] | None = None, env: dict[str, str] | None = None, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run `node ARGS` from tests/frontend; secrets go on stdin or in the environment, never in argv."""
    node = shutil.which("node")
    assert node is not None, "node is missing (Node.js 20.19+ is needed for the frontend tests)"
    return subprocess.run(
        [node, *args],
        input=json.dumps(stdin) if stdin is not None else None,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=FRONTEND_TESTS,
        check=False,
    )
