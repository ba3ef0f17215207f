"""Dev mode: with no configuration at all, run on the bundled emulator with a dev issuer and memory limiter.

What dev mode generates (the dev JWT signing secret; the emulator's API key and CA) lives in the state
directory (`LIVETOKEN_STATE_DIR`, default `./.livetoken/`) so `livetoken dev-jwt` and `livetoken client` find it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from service.config import EnvConfig, Secret, Settings, load_env, parse_file_config

DEV_ISSUER = "livetoken-dev"
DEV_AUDIENCE = "livetoken"
DEV_SECRET_ENV = "LIVETOKEN_DEV_JWT_SECRET"  # noqa: S105 - the name of a variable, not a secret

DEV_CONFIG = f"""
[[issuers]]
issuer = "{DEV_ISSUER}"
audiences = ["{DEV_AUDIENCE}"]
algorithms = ["HS256"]
hs256_secret_env = "{DEV_SECRET_ENV}"
tenant_claim = "tenant"
scopes_claim = "scope"
max_token_age = "24h"

[upstream]
warm_connections = 4  # one developer, a local emulator: no first burst to prepare for

[limits]
subject = [{{ rate = 30, period = "1m", burst = 10 }}]
global = [{{ rate = 600, period = "1m", burst = 100 }}]

[profiles.voice]
description = "Voice chat: audio in and out, transcripts both ways."
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
voice = "Puck"
allowed_voices = ["Puck", "Kore", "Charon", "Aoede"]
system_instruction = "You are a friendly voice assistant. Be brief."
input_audio_transcription = true
output_audio_transcription = true
session_resumption = true
context_window_compression = true

[profiles.video]
description = "Voice and video: camera or screen frames (1 per second) with audio; Google ends these after 2 minutes."
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
voice = "Puck"
system_instruction = "You are a friendly assistant who can see the user's camera or screen. Be brief."
input_audio_transcription = true
output_audio_transcription = true
session_resumption = true
media_resolution = "low"
session_ttl = "2m"

[profiles.text]
description = "Text chat: today's Live models answer in audio; clients show its transcript and play nothing."
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
output_audio_transcription = true
presentation = "transcript"
system_instruction = "You are a helpful assistant. Be brief."

[profiles.tools]
description = "Voice chat with tools (clock: non-blocking; calculator: blocking); needs scope live:tools."
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
voice = "Kore"
output_audio_transcription = true
input_audio_transcription = true
require = {{ scopes = ["live:tools"] }}

[[profiles.tools.tools]]
name = "get_current_time"
description = "Current date and time in UTC."

[[profiles.tools.tools]]
name = "calculate"
description = "Evaluate a basic arithmetic expression."
behavior = "blocking"
parameters = {{ type = "object", properties = {{ expression = {{ type = "string" }} }}, required = ["expression"] }}

[profiles.thinking]
description = "Voice chat that reasons before it answers (extended thinking, medium)."
model = "gemini-3.8-live-extended-thinking"
response_modalities = ["AUDIO"]
voice = "Charon"
thinking_level = "medium"
input_audio_transcription = true
output_audio_transcription = true
session_resumption = true
context_window_compression = true

[profiles.thinking.activity_detection]
end_sensitivity = "low"
silence_duration = "800ms"
"""


def state_dir(env: dict[str, str] | None = None) -> Path:
    """The dev state directory (created on demand, private to the user)."""
    env = dict(os.environ) if env is None else env
    path = Path(env.get("LIVETOKEN_STATE_DIR") or ".livetoken").absolute()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def dev_secret(directory: Path) -> str:
    """The dev issuer's HS256 secret, made once and kept in the state directory."""
    path = directory / "dev-jwt-secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def mint_dev_jwt(directory: Path, subject: str, scopes: list[str], ttl: float, tenant: str | None = None) -> str:
    """A caller JWT signed by the dev issuer."""
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=ttl),
        "scope": " ".join(scopes),
    }
    if tenant:
        claims["tenant"] = tenant
    return jwt.encode(claims, dev_secret(directory), algorithm="HS256")


@dataclass(frozen=True)
class EmulatorInfo:
    """Where the emulator listens and how to trust it."""

    base_url: str
    api_key: str
    ca_file: str


def read_emulator_info(directory: Path) -> EmulatorInfo | None:
    """The emulator's emulator.json, if present and complete."""
    try:
        data = json.loads((directory / "emulator.json").read_text())
        return EmulatorInfo(data["base_url"], data["api_key"], data["ca_file"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start_emulator_child(directory: Path, timeout: float = 30.0) -> tuple[subprocess.Popen[bytes], EmulatorInfo]:
    """Start `livetoken emulator` as a child process on a free port and wait until it is ready."""
    info_file = directory / "emulator.json"
    info_file.unlink(missing_ok=True)
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "service.emulator", "--port", "0", "--state-dir", str(directory)],
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the emulator exited with status {proc.returncode} during start-up")
        info = read_emulator_info(directory)
        if info is not None:
            return proc, info
        time.sleep(0.05)
    proc.terminate()
    raise RuntimeError("the emulator did not become ready within 30 s")


def dev_settings(directory: Path, emulator: EmulatorInfo | None) -> Settings:
    """Settings for dev mode; without emulator info the upstream fields stay empty (for openapi, dev-jwt)."""
    file = parse_file_config(tomllib.loads(DEV_CONFIG))
    env = {DEV_SECRET_ENV: dev_secret(directory)}
    if emulator is not None:
        env |= {
            "LIVETOKEN_GEMINI_API_KEY": emulator.api_key,
            "LIVETOKEN_GEMINI_BASE_URL": emulator.base_url,
            "LIVETOKEN_GEMINI_CA_FILE": emulator.ca_file,
        }
    for name in ("LIVETOKEN_LOG_FORMAT", "LIVETOKEN_LOG_LEVEL", "LIVETOKEN_CORS_ALLOW_ORIGINS"):
        if name in os.environ:
            env[name] = os.environ[name]
    loaded: EnvConfig = load_env(env, file, require_api_key=emulator is not None)
    if emulator is None:
        loaded = EnvConfig(**{**loaded.__dict__, "gemini_api_key": Secret("unused-in-this-command")})
    return Settings(file=file, env=loaded, dev_mode=True, config_path=None)
