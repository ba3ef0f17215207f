"""The minter's precomputed request is exactly what the SDK's public call would send: path, headers, body."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from google import genai
from google.genai import types

from service.config import FunctionDeclaration, ProfileConfig, Secret, UpstreamConfig
from service.metrics import Metrics
from service.upstream import TokenMinter, sdk_http_options
from service.upstream.constraints import build_constraints
from service.upstream.sdk import token_request_sender


async def test_template_equals_what_auth_tokens_create_sends(emulator: Any) -> None:
    """For a profile with voice, instruction, tools and transcription, the bodies match key for key."""
    profile = _profile()
    constraints = build_constraints(profile)[None]
    now = datetime.now(UTC)
    config = types.CreateAuthTokenConfig(
        uses=1,
        expire_time=now + timedelta(minutes=15),
        new_session_expire_time=now + timedelta(seconds=60),
        live_connect_constraints=constraints,
    )
    client = genai.Client(api_key=emulator.api_key, http_options=sdk_http_options(emulator.base_url, emulator.ca_file))
    try:
        await client.aio.auth_tokens.create(config=config)
        ours = token_request_sender(client).request_body(config)
    finally:
        await client.aio.aclose()
    assert emulator.last_request()["body"] == ours
    assert "fieldMask" not in ours


async def test_minted_request_equals_the_public_sdk_call_on_the_wire(emulator: Any) -> None:
    """The minter sends through the SDK's HTTP client with the SDK-built URL and headers and the SDK's JSON
    encoding: apart from the two expiry times, Google receives the same bytes as from auth_tokens.create."""
    profile = _profile()
    minter = TokenMinter(
        api_key=Secret(emulator.api_key),
        base_url=emulator.base_url,
        ca_file=emulator.ca_file,
        profiles={"voice": profile},
        upstream=UpstreamConfig(),
        metrics=Metrics(),
    )
    try:
        token = await minter.mint("voice", None)
    finally:
        await minter.aclose()
    ours = emulator.last_request()
    config = types.CreateAuthTokenConfig(
        uses=profile.uses,
        expire_time=token.expire_time,
        new_session_expire_time=token.new_session_expire_time,
        live_connect_constraints=token.constraints,
    )
    client = genai.Client(api_key=emulator.api_key, http_options=sdk_http_options(emulator.base_url, emulator.ca_file))
    try:
        await client.aio.auth_tokens.create(config=config)
    finally:
        await client.aio.aclose()
    public = emulator.last_request()
    assert token.name.startswith("auth_tokens/")
    assert ours["path"] == public["path"] == "/v1alpha/auth_tokens"
    assert ours["raw_body"] == public["raw_body"]
    assert ours["headers"] == public["headers"]
    assert ours["headers"]["x-goog-api-key"] == "<redacted>"  # the key went where Google expects it


def _profile() -> ProfileConfig:
    return ProfileConfig(
        model="gemini-2.5-flash-native-audio-preview-12-2025",
        voice="Kore",
        system_instruction="Be brief.",
        temperature=0.5,
        input_audio_transcription=True,
        output_audio_transcription=True,
        context_window_compression=True,
        tools=[
            FunctionDeclaration(
                name="calculate", parameters={"type": "object", "properties": {"x": {"type": "string"}}}
            )
        ],
    )


async def test_pooled_connections_idle_for_seconds_mint_at_the_first_attempt(emulator: Any) -> None:
    """The emulator keeps idle keep-alive connections as long as Google's front ends (610 s) and the minter drops
    its own after a minute: a warm pool left idle for 6 s (longer than uvicorn's default 5 s) serves a burst of
    16 mints with exactly 16 attempts, none failed."""
    minter = TokenMinter(
        api_key=Secret(emulator.api_key),
        base_url=emulator.base_url,
        ca_file=emulator.ca_file,
        profiles={"voice": _profile()},
        upstream=UpstreamConfig(),
        metrics=Metrics(),
    )
    try:
        assert await minter.warm(16) == 16
        await asyncio.sleep(6)  # idle, on purpose: the server side's idle time is what is tested
        before = emulator.request_count()
        tokens = await asyncio.gather(*(minter.mint("voice", None) for _ in range(16)))
    finally:
        await minter.aclose()
    assert all(t.name.startswith("auth_tokens/") for t in tokens)
    assert emulator.request_count() - before == 16
