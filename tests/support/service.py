"""Build the token service for tests: a real config file, real Redis, the emulator as upstream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.config import Settings, load_settings
from service.metrics import Metrics

ISSUER = "https://issuer.test/"
AUDIENCE = "livetoken"
JWT_SECRET = "test-issuer-secret-that-is-long-enough-0123456789"

CONFIG = f"""
[[issuers]]
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
algorithms = ["HS256"]
hs256_secret_env = "TEST_ISSUER_SECRET"
tenant_claim = "org"
scopes_claim = "scope"

[upstream]
attempt_timeout = "2s"
deadline = "3s"
max_retries = 2
backoff_base = "20ms"
circuit_failure_threshold = 50
circuit_reset_after = "1s"
warm_connections = 8  # the default (256) is what the burst tests and make bench measure

[limits]
{{limits}}

[profiles.voice]
description = "Voice chat."
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
voice = "Kore"
allowed_voices = ["Kore", "Puck"]
system_instruction = "You are a helpful voice assistant."
temperature = 0.7
input_audio_transcription = true
output_audio_transcription = true
session_ttl = "15m"
new_session_ttl = "60s"

[profiles.text]
description = "Text chat."
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
output_audio_transcription = true
presentation = "transcript"
uses = 2

[profiles.tools]
description = "Needs a scope."
model = "gemini-3.8-live"
response_modalities = ["AUDIO"]
require = {{{{ scopes = ["live:tools"] }}}}

[[profiles.tools.tools]]
name = "get_weather"
description = "Get weather for a city"
parameters = {{{{ type = "object", properties = {{{{ city = {{{{ type = "string" }}}} }}}}, required = ["city"] }}}}
"""

DEFAULT_LIMITS = 'subject = [{ rate = 1000, period = "1m", burst = 1000 }]'


def make_jwt(sub: str = "alice", scopes: str = "", org: str | None = "acme", **extra: Any) -> str:
    """A valid caller JWT from the test issuer."""
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300, "scope": scopes}
    if org is not None:
        claims["org"] = org
    claims.update(extra)
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def auth(token: str | None = None, **kw: Any) -> dict[str, str]:
    """Authorization header for a caller."""
    return {"Authorization": f"Bearer {token or make_jwt(**kw)}"}


def write_config(tmp_path: Path, limits: str = DEFAULT_LIMITS, extra: str = "") -> Path:
    """Write the test config with the given [limits] body."""
    path = tmp_path / "livetoken.toml"
    path.write_text(CONFIG.format(limits=limits) + extra)
    return path


def service_env(emulator: Any, redis_url: str | None, **extra: str) -> dict[str, str]:
    """The environment the service reads: emulator upstream, Redis, issuer secret."""
    env = {
        "TEST_ISSUER_SECRET": JWT_SECRET,
        "LIVETOKEN_GEMINI_API_KEY": emulator.api_key,
        "LIVETOKEN_GEMINI_BASE_URL": emulator.base_url,
        "LIVETOKEN_GEMINI_CA_FILE": str(emulator.ca_file),
        "LIVETOKEN_LOG_FORMAT": "json",
    }
    if redis_url:
        env["LIVETOKEN_REDIS_URL"] = redis_url
    env.update(extra)
    return env


def build_settings(config: Path, env: Mapping[str, str]) -> Settings:
    """Validated settings for the test app."""
    return load_settings(config, env)


@asynccontextmanager
async def running_app(settings: Settings, metrics: Metrics | None = None) -> AsyncIterator[AsyncTestClient[Any]]:
    """The app with its lifespan running, behind an in-process HTTP client."""
    app = create_app(settings, metrics)
    async with AsyncTestClient(app=app, base_url="http://livetoken.test") as client:
        yield client


def with_default_warm_up(config: Path) -> Path:
    """The test config with `upstream.warm_connections` at its default (256), as a new replica starts."""
    text = config.read_text()
    config.write_text("\n".join(line for line in text.splitlines() if not line.startswith("warm_connections")))
    return config
