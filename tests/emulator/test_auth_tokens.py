"""The emulator's auth_tokens endpoint, driven by the real SDK and compared with the captures of Google."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

import aiohttp
import httpx
import pytest
from google import genai
from google.genai import errors, types

from service.upstream import sdk_http_options

# Copies of shared/reference/google-genai-3.6.1 (captures of the real SDK), so a bare clone can run the tests.
CAPTURES = Path(__file__).resolve().parent / "captures"


_OPEN: list[genai.Client] = []


def api_client(emulator: Any, key: str | None = None) -> genai.Client:
    """The SDK pointed at the emulator, trusting its CA through configuration (closed after each test)."""
    client = genai.Client(
        api_key=key or emulator.api_key, http_options=sdk_http_options(emulator.base_url, emulator.ca_file)
    )
    _OPEN.append(client)
    return client


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().aio.aclose()


def constraints() -> types.LiveConnectConstraints:
    """The locked setup used in the captures."""
    return types.LiveConnectConstraints(
        model="gemini-2.5-flash-native-audio-preview-12-2025",
        config=types.LiveConnectConfig(
            response_modalities=[types.Modality.AUDIO],
            temperature=0.7,
            speech_config=types.SpeechConfig(
                voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Kore"))
            ),
            system_instruction="You are a helpful voice assistant.",
        ),
    )


class Times(TypedDict):
    """The two expiry times of a token request."""

    expire_time: datetime
    new_session_expire_time: datetime


def times(minutes: float = 30, seconds: float = 60) -> Times:
    """Aware expiry times from now."""
    now = datetime.now(UTC)
    return {
        "expire_time": now + timedelta(minutes=minutes),
        "new_session_expire_time": now + timedelta(seconds=seconds),
    }


async def test_mint_matches_the_capture_shape(emulator: Any) -> None:
    """The SDK's request has the captured shape and the answer is just a token name."""
    token = await api_client(emulator).aio.auth_tokens.create(
        config=types.CreateAuthTokenConfig(uses=1, live_connect_constraints=constraints(), **times())
    )
    assert token.name is not None
    assert token.name.startswith("auth_tokens/")
    received = emulator.last_request()
    capture = json.loads((CAPTURES / "token_request_lock_unset_None.json").read_text())
    assert received["path"] == "/v1alpha/auth_tokens"
    assert set(received["body"]) == {"expireTime", "newSessionExpireTime", "uses", "bidiGenerateContentSetup"}
    assert set(received["body"]["bidiGenerateContentSetup"]) == {"model", "generationConfig", "systemInstruction"}
    assert (
        received["body"]["bidiGenerateContentSetup"]["generationConfig"]["speechConfig"]
        == (capture["body"]["bidiGenerateContentSetup"]["generationConfig"]["speechConfig"])
    )
    assert received["headers"]["x-goog-api-key"] == "<redacted>"
    held = emulator.token(token.name)
    assert held["uses_remaining"] == 1
    assert held["field_mask"] is None


async def test_defaults_for_an_empty_request(emulator: Any) -> None:
    """config=None sends no body: Google's defaults apply (1 use, 30 min, 60 s new-session window)."""
    before = datetime.now(UTC)
    token = await api_client(emulator).aio.auth_tokens.create()
    assert emulator.last_request()["raw_body"] == ""
    held = emulator.token(token.name or "")
    assert held["uses"] == 1
    expire = datetime.fromisoformat(held["expire_time"])
    new_session = datetime.fromisoformat(held["new_session_expire_time"])
    assert timedelta(minutes=29) < expire - before < timedelta(minutes=31)
    assert timedelta(seconds=55) < new_session - before < timedelta(seconds=65)


def test_snake_case_body_is_accepted(emulator: Any) -> None:
    """Top-level snake_case keys (as other clients send) mean the same as camelCase."""
    now = datetime.now(UTC)
    body = {"uses": 3, "expire_time": (now + timedelta(minutes=5)).isoformat()}
    resp = httpx.post(
        f"{emulator.base_url}/v1beta/auth_tokens",
        json=body,
        verify=emulator.ssl_context(),
        headers={"x-goog-api-key": emulator.api_key},
    )
    assert resp.status_code == 200
    assert emulator.token(resp.json()["name"])["uses"] == 3


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(lambda: times(minutes=20 * 60 + 1), "20 hours", id="expire-over-20h"),
        pytest.param(lambda: times(minutes=-1), "future", id="expire-in-past"),
        pytest.param(
            lambda: {**times(), "new_session_expire_time": datetime.now(UTC) + timedelta(hours=2)},
            "after expire_time",
            id="new-session-after-expiry",
        ),
        pytest.param(
            lambda: {"expire_time": datetime.now() + timedelta(minutes=5)}, "Invalid value", id="naive-datetime"
        ),
        pytest.param(lambda: {**times(), "uses": -1}, "uses", id="negative-uses"),
    ],
)
async def test_google_limits_are_enforced(emulator: Any, config: Any, message: str) -> None:
    """Out-of-range times or uses: ClientError 400 INVALID_ARGUMENT, as Google answers."""
    with pytest.raises(errors.ClientError) as err:
        await api_client(emulator).aio.auth_tokens.create(config=types.CreateAuthTokenConfig(**config()))
    assert err.value.code == 400
    assert err.value.status == "INVALID_ARGUMENT"
    assert message in (err.value.message or "")


async def test_empty_lock_list_is_rejected_like_the_real_api(emulator: Any) -> None:
    """lock_additional_fields=[] produces the field mask the real API rejects with 400 'field_mask is invalid'."""
    with pytest.raises(errors.ClientError) as err:
        await api_client(emulator).aio.auth_tokens.create(
            config=types.CreateAuthTokenConfig(
                live_connect_constraints=constraints(), lock_additional_fields=[], **times()
            )
        )
    assert err.value.code == 400
    assert "field_mask is invalid" in (err.value.message or "")


async def test_lock_list_is_accepted_and_recorded(emulator: Any) -> None:
    """A list of extra fields to lock is accepted and its mask kept (set fields plus the named ones)."""
    token = await api_client(emulator).aio.auth_tokens.create(
        config=types.CreateAuthTokenConfig(
            live_connect_constraints=constraints(), lock_additional_fields=["output_audio_transcription"], **times()
        )
    )
    mask = emulator.token(token.name or "")["field_mask"]
    assert "model" in mask
    assert "output_audio_transcription" in mask


@pytest.mark.parametrize(
    ("key", "code", "status"), [("wrong-key", 400, "INVALID_ARGUMENT"), (None, 403, "PERMISSION_DENIED")]
)
async def test_api_key_is_checked(emulator: Any, key: str | None, code: int, status: str) -> None:
    """A wrong key is 400 'API key not valid'; a missing one 403, in Google's error shape."""
    headers = {"x-goog-api-key": key} if key else {}
    async with httpx.AsyncClient(verify=emulator.ssl_context()) as http:
        resp = await http.post(f"{emulator.base_url}/v1alpha/auth_tokens", json={}, headers=headers)
    assert resp.status_code == code
    assert resp.json()["error"]["code"] == code
    assert resp.json()["error"]["status"] == status
    if key:
        with pytest.raises(errors.ClientError) as err:
            await api_client(emulator, key).aio.auth_tokens.create()
        assert err.value.code == 400


@pytest.mark.parametrize(
    ("code", "cls", "status"),
    [
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
    ],
)
async def test_injected_errors_reach_the_sdk_as_google_errors(
    emulator: Any, code: int, cls: type[errors.APIError], status: str
) -> None:
    """Fault injection answers in Google's shape, so the SDK raises the same classes as in the captures."""
    emulator.fail_next(code)
    with pytest.raises(cls) as err:
        await api_client(emulator).aio.auth_tokens.create()
    assert err.value.code == code
    assert err.value.status == status


async def test_injected_drop_and_latency(emulator: Any) -> None:
    """A dropped connection surfaces as a transport error (the SDK sends through aiohttp when it is installed, as
    here); added latency delays the answer."""
    emulator.fail_next("drop")
    with pytest.raises(aiohttp.ClientError):
        await api_client(emulator).aio.auth_tokens.create()
    emulator.set_latency(300)
    started = datetime.now(UTC)
    await api_client(emulator).aio.auth_tokens.create()
    assert datetime.now(UTC) - started >= timedelta(milliseconds=290)


def test_admin_needs_the_api_key(emulator: Any) -> None:
    """/_emulator/ introspection is not open to anyone who can reach the port."""
    resp = httpx.get(f"{emulator.base_url}/_emulator/requests", verify=emulator.ssl_context())
    assert resp.status_code == 401
