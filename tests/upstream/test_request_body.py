"""The minter's precomputed request body is exactly what the SDK's public call would send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from google import genai
from google.genai import types

from service.config import FunctionDeclaration, ProfileConfig
from service.upstream.constraints import build_constraints
from service.upstream.minter import sdk_http_options, sdk_request_body


async def test_template_equals_what_auth_tokens_create_sends(emulator: Any) -> None:
    """For a profile with voice, instruction, tools and transcription, the bodies match key for key."""
    profile = ProfileConfig(
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
        ours = sdk_request_body(client.aio._api_client, config)
    finally:
        await client.aio.aclose()
    assert emulator.last_request()["body"] == ours
    assert "fieldMask" not in ours
