"""POST /v1/tokens end to end: real Redis, the real SDK minting against the emulator."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.service import auth, build_settings, make_jwt, running_app, service_env, write_config

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def settings(tmp_path: Path, emulator: Any, redis_url: str) -> Any:
    return build_settings(write_config(tmp_path), service_env(emulator, redis_url))


async def test_issues_a_locked_single_use_token(settings: Any, emulator: Any) -> None:
    """A caller gets 201 with the token, its expiry and connect details; nothing is cacheable."""
    async with running_app(settings) as client:
        before = datetime.now(UTC)
        resp = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth())
    assert resp.status_code == 201, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert body["token"].startswith("auth_tokens/")
    assert body["uses"] == 1
    assert body["profile"] == "voice"
    assert body["api_version"] == "v1alpha"
    assert body["model"] == "gemini-3.8-live"
    assert body["voice"] == "Kore"
    assert body["presentation"] == "voice"
    expire = datetime.fromisoformat(body["expire_time"])
    new_session = datetime.fromisoformat(body["new_session_expire_time"])
    assert timedelta(minutes=14) < expire - before < timedelta(minutes=16)
    assert timedelta(seconds=55) < new_session - before < timedelta(seconds=65)
    connect = body["connect"]
    assert connect["base_url"] == emulator.base_url.rstrip("/")
    assert connect["websocket_url"].endswith(
        "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained"
    )
    assert connect["api_version"] == "v1alpha"
    assert connect["model"] == "gemini-3.8-live"
    # The Live API's own camelCase JSON: what the JS SDK's LiveConnectConfig takes unchanged.
    assert connect["config"] == {
        "responseModalities": ["AUDIO"],
        "temperature": 0.7,
        "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
        "systemInstruction": "You are a helpful voice assistant.",
        "inputAudioTranscription": {},
        "outputAudioTranscription": {},
        "sessionResumption": {},
    }
    assert "RateLimit" in resp.headers
    assert "RateLimit-Policy" in resp.headers
    # The emulator knows the token and holds exactly one use for it.
    minted = emulator.token(body["token"])
    assert minted["uses_remaining"] == 1


async def test_google_receives_the_whole_locked_setup(settings: Any, emulator: Any) -> None:
    """The body that reaches Google has uses, aware expiry times, the profile's setup, and no fieldMask."""
    async with running_app(settings) as client:
        resp = await client.post("/v1/tokens", json={"profile": "voice", "voice": "Puck"}, headers=auth())
    assert resp.status_code == 201, resp.text
    received = emulator.last_request()
    body = received["body"]
    assert received["path"] == "/v1alpha/auth_tokens"
    assert "fieldMask" not in body
    assert body["uses"] == 1
    for key in ("expireTime", "newSessionExpireTime"):
        assert datetime.fromisoformat(body[key]).tzinfo is not None, body[key]
    setup = body["bidiGenerateContentSetup"]
    assert setup["model"] == "models/gemini-3.8-live"
    gen = setup["generationConfig"]
    assert gen["responseModalities"] == ["AUDIO"]
    assert gen["temperature"] == 0.7
    voice = gen["speechConfig"]["voice_config"]["prebuilt_voice_config"]["voice_name"]
    assert voice == "Puck"
    assert setup["systemInstruction"]["parts"][0]["text"] == "You are a helpful voice assistant."
    assert "inputAudioTranscription" in setup
    assert "outputAudioTranscription" in setup
    assert received["headers"]["x-goog-api-key"] == "<redacted>"  # sent where Google expects it (masked here)


async def test_tools_profile_sends_function_declarations(settings: Any, emulator: Any) -> None:
    """A profile's tools reach Google as function declarations in the locked setup."""
    async with running_app(settings) as client:
        resp = await client.post("/v1/tokens", json={"profile": "tools"}, headers=auth(scopes="live:tools"))
    assert resp.status_code == 201, resp.text
    setup = emulator.last_request()["body"]["bidiGenerateContentSetup"]
    decl = setup["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "get_weather"
    # gemini-3.8-live's own default, written out so every client knows the call does not block the conversation.
    assert decl["behavior"] == "NON_BLOCKING"
    assert decl["parameters"]["required"] == ["city"]


async def test_text_profile_uses_from_profile(settings: Any, emulator: Any) -> None:
    """`uses` comes from the profile (2 here); the text profile is audio with its transcript, shown as text
    (`presentation`), and names no voice."""
    async with running_app(settings) as client:
        resp = await client.post("/v1/tokens", json={"profile": "text"}, headers=auth())
    assert resp.status_code == 201, resp.text
    assert resp.json()["uses"] == 2
    assert resp.json()["voice"] is None
    assert resp.json()["presentation"] == "transcript"
    assert resp.json()["connect"]["config"] == {
        "responseModalities": ["AUDIO"],
        "sessionResumption": {},
        "outputAudioTranscription": {},
    }
    body = emulator.last_request()["body"]
    assert body["uses"] == 2
    assert body["bidiGenerateContentSetup"]["generationConfig"]["responseModalities"] == ["AUDIO"]
    assert body["bidiGenerateContentSetup"]["outputAudioTranscription"] == {}


@pytest.mark.parametrize(
    ("payload", "headers", "status", "slug"),
    [
        pytest.param({"profile": "nope"}, {}, 404, "profile-not-found", id="unknown-profile"),
        pytest.param({"profile": "tools"}, {}, 403, "profile-forbidden", id="missing-scope"),
        pytest.param({"profile": "voice", "voice": "Charon"}, {}, 403, "override-not-allowed", id="voice-not-allowed"),
        pytest.param({"profile": "text", "voice": "Puck"}, {}, 403, "override-not-allowed", id="voice-on-text"),
    ],
)
async def test_authorization_refusals(
    settings: Any, emulator: Any, payload: dict[str, Any], headers: dict[str, str], status: int, slug: str
) -> None:
    """Unknown profiles are 404, disallowed ones and overrides 403, and no token is minted for them."""
    before = emulator.mint_count()
    async with running_app(settings) as client:
        resp = await client.post("/v1/tokens", json=payload, headers={**auth(), **headers})
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["type"].endswith("/" + slug)
    assert emulator.mint_count() == before


async def test_profiles_lists_only_what_the_caller_may_use(settings: Any) -> None:
    """GET /v1/profiles hides profiles whose `require` rule the caller does not meet."""
    async with running_app(settings) as client:
        plain = await client.get("/v1/profiles", headers=auth())
        scoped = await client.get("/v1/profiles", headers=auth(scopes="live:tools other"))
        anonymous = await client.get("/v1/profiles")
    assert [p["name"] for p in plain.json()["profiles"]] == ["text", "voice"]
    assert [p["name"] for p in scoped.json()["profiles"]] == ["text", "tools", "voice"]
    assert scoped.json()["profiles"][1]["tools"] == ["get_weather"]
    assert anonymous.status_code == 401


async def test_idempotent_retry_returns_the_same_token_minted_once(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """Same Idempotency-Key by the same caller: same token, one mint, no rate limit spent."""
    settings = build_settings(
        write_config(tmp_path, 'subject = [{ rate = 2, period = "1h", burst = 2 }]'), service_env(emulator, redis_url)
    )
    token = make_jwt(sub="idem-user")
    async with running_app(settings) as client:
        before = emulator.mint_count()
        headers = {**auth(token), "Idempotency-Key": "retry-1"}
        first = await client.post("/v1/tokens", json={"profile": "voice"}, headers=headers)
        again = [await client.post("/v1/tokens", json={"profile": "voice"}, headers=headers) for _ in range(3)]
        assert emulator.mint_count() == before + 1
        for resp in again:
            assert resp.status_code == 201
            assert resp.json()["token"] == first.json()["token"]
            assert resp.headers["idempotent-replayed"] == "true"
        # The replays spent nothing: one more fresh request still fits in the burst of 2.
        fresh = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))
        assert fresh.status_code == 201
        assert fresh.json()["token"] != first.json()["token"]
        # Another caller with the same key gets their own token, not alice's.
        other = await client.post(
            "/v1/tokens", json={"profile": "voice"}, headers={**auth(sub="mallory"), "Idempotency-Key": "retry-1"}
        )
        assert other.status_code == 201
        assert other.json()["token"] != first.json()["token"]
        # Same key, different body: refused rather than silently replayed, whichever field differs.
        for body in ({"profile": "text"}, {"profile": "voice", "voice": "Puck"}):
            mismatch = await client.post("/v1/tokens", json=body, headers=headers)
            assert mismatch.status_code == 422, body
            assert mismatch.json()["type"].endswith("/idempotency-key-reused")
        assert emulator.mint_count() == before + 3  # first, fresh and other: the refusals minted nothing


async def test_rate_limit_429_with_headers(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """Past the burst the caller gets 429 with Retry-After and RateLimit headers, and no mint happens."""
    settings = build_settings(
        write_config(tmp_path, 'subject = [{ rate = 3, period = "1h", burst = 3 }]'), service_env(emulator, redis_url)
    )
    token = make_jwt(sub="busy")
    async with running_app(settings) as client:
        statuses = [
            (await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))).status_code
            for _ in range(3)
        ]
        before = emulator.mint_count()
        denied = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))
    assert statuses == [201, 201, 201]
    assert denied.status_code == 429
    assert emulator.mint_count() == before
    assert int(denied.headers["retry-after"]) >= 1
    assert "q=3" in denied.headers["ratelimit-policy"]
    assert "r=0" in denied.headers["ratelimit"]
    assert denied.json()["type"].endswith("/rate-limited")


async def test_two_instances_sharing_redis_admit_exactly_the_limit(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """200 simultaneous requests for one subject through two app instances, limit 10: exactly 10 tokens."""
    settings = build_settings(
        write_config(tmp_path, 'subject = [{ rate = 10, period = "1h", burst = 10 }]'), service_env(emulator, redis_url)
    )
    token = make_jwt(sub="hammer")
    async with running_app(settings) as a, running_app(settings) as b:
        calls = [
            (a if i % 2 else b).post("/v1/tokens", json={"profile": "text"}, headers=auth(token)) for i in range(200)
        ]
        results = await asyncio.gather(*calls)
    statuses = [r.status_code for r in results]
    assert statuses.count(201) == 10
    assert statuses.count(429) == 190


async def test_a_tenant_limit_is_shared_by_its_subjects(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """A tenant rule of 3 counts every subject of that tenant together: three users of acme spend it, a fourth
    acme user is refused by the tenant layer, and a user of another tenant is not."""
    settings = build_settings(
        write_config(
            tmp_path,
            'subject = [{ rate = 100, period = "1h", burst = 100 }]\ntenant = [{ rate = 3, period = "1h", burst = 3 }]',
        ),
        service_env(emulator, redis_url),
    )
    async with running_app(settings) as client:
        spent = [
            (await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(sub=f"acme-{i}"))).status_code
            for i in range(3)
        ]
        fourth = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(sub="acme-3"))
        other = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(sub="globex-0", org="globex"))
        metrics = (await client.get("/metrics")).text
    assert spent == [201, 201, 201]
    assert fourth.status_code == 429
    assert fourth.json()["type"] == "https://livetoken.dev/problems/rate-limited"
    assert '"tenant-' in fourth.headers["ratelimit-policy"]
    assert other.status_code == 201
    assert 'livetoken_rate_limited_total{layer="tenant"} 1.0' in metrics


TODAYS_PROFILE = """
[profiles.today]
model = "gemini-3.8-live-extended-thinking"
voice = "Charon"
thinking_level = "high"
turn_coverage = "only_activity"
media_resolution = "medium"
output_audio_transcription = true

[profiles.today.activity_detection]
start_sensitivity = "low"
end_sensitivity = "high"
prefix_padding = "40ms"
silence_duration = "1.2s"

[[profiles.today.tools]]
name = "lookup"
description = "Look something up."

[profiles.manual]
model = "gemini-3.8-live"
proactive_audio = true
activity_detection = { mode = "manual" }
"""


async def test_todays_profile_keys_reach_google_and_the_client_alike(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """thinking_level, activity detection, turn coverage, media resolution, tool behaviour and proactive audio are
    locked into the token (Google's body) and served in connect.config as the Live API's camelCase JSON."""
    settings = build_settings(write_config(tmp_path, extra=TODAYS_PROFILE), service_env(emulator, redis_url))
    async with running_app(settings) as client:
        today = await client.post("/v1/tokens", json={"profile": "today"}, headers=auth())
        today_setup = emulator.last_request()["body"]["bidiGenerateContentSetup"]
        manual = await client.post("/v1/tokens", json={"profile": "manual"}, headers=auth())
        manual_setup = emulator.last_request()["body"]["bidiGenerateContentSetup"]
    assert (today.status_code, manual.status_code) == (201, 201), today.text + manual.text
    assert today.json()["connect"]["config"] == {
        "responseModalities": ["AUDIO"],
        "mediaResolution": "MEDIA_RESOLUTION_MEDIUM",
        "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Charon"}}},
        "thinkingConfig": {"thinkingLevel": "HIGH"},
        "tools": [
            {
                "functionDeclarations": [
                    {"description": "Look something up.", "name": "lookup", "behavior": "NON_BLOCKING"}
                ]
            }
        ],
        "sessionResumption": {},
        "outputAudioTranscription": {},
        "realtimeInputConfig": {
            "automaticActivityDetection": {
                "startOfSpeechSensitivity": "START_SENSITIVITY_LOW",
                "endOfSpeechSensitivity": "END_SENSITIVITY_HIGH",
                "prefixPaddingMs": 40,
                "silenceDurationMs": 1200,
            },
            "turnCoverage": "TURN_INCLUDES_ONLY_ACTIVITY",
        },
    }
    assert today_setup["model"] == "models/gemini-3.8-live-extended-thinking"
    assert today_setup["generationConfig"]["thinkingConfig"] == {"thinking_level": "HIGH"}
    assert today_setup["generationConfig"]["mediaResolution"] == "MEDIA_RESOLUTION_MEDIUM"
    assert today_setup["realtimeInputConfig"] == {
        "automatic_activity_detection": {
            "start_of_speech_sensitivity": "START_SENSITIVITY_LOW",
            "end_of_speech_sensitivity": "END_SENSITIVITY_HIGH",
            "prefix_padding_ms": 40,
            "silence_duration_ms": 1200,
        },
        "turn_coverage": "TURN_INCLUDES_ONLY_ACTIVITY",
    }
    assert today_setup["tools"][0]["functionDeclarations"][0]["behavior"] == "NON_BLOCKING"
    assert manual.json()["connect"]["config"]["realtimeInputConfig"] == {
        "automaticActivityDetection": {"disabled": True}
    }
    assert manual.json()["connect"]["config"]["proactivity"] == {"proactiveAudio": True}
    assert manual_setup["proactivity"] == {"proactive_audio": True}


STATUS_PROFILES = """
[profiles.legacy]
model = "gemini-3.1-flash-live-preview"

[profiles.newer]
model = "gemini-9-live"
"""


async def test_profiles_show_each_models_status_from_the_catalogue(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """GET /v1/profiles says what the catalogue knows of each profile's model today: GA, legacy, or unknown."""
    settings = build_settings(write_config(tmp_path, extra=STATUS_PROFILES), service_env(emulator, redis_url))
    async with running_app(settings) as client:
        resp = await client.get("/v1/profiles", headers=auth())
    assert resp.status_code == 200
    shown = {
        p["name"]: (p["model"], p["model_status"], p["model_shutdown"], p["presentation"])
        for p in resp.json()["profiles"]
    }
    assert shown == {
        "legacy": ("gemini-3.1-flash-live-preview", "legacy", None, "voice"),
        "newer": ("gemini-9-live", "unknown", None, "voice"),
        "text": ("gemini-3.8-live", "GA", None, "transcript"),
        "voice": ("gemini-3.8-live", "GA", None, "voice"),
    }


async def test_usage_and_the_ratelimit_headers_say_the_same_thing(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """One vocabulary: a limit of 30 a minute with bursts of 10 is `q=30;w=60` in RateLimit-Policy and
    `limit: 30, burst: 10, period_seconds: 60` in /v1/usage; what remains after one token is 9 in both."""
    limits = 'subject = [{ rate = 30, period = "1m", burst = 10 }]'
    settings = build_settings(write_config(tmp_path, limits), service_env(emulator, redis_url))
    token = make_jwt(sub="counter")
    async with running_app(settings) as client:
        issued = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))
        usage = await client.get("/v1/usage", headers=auth(token))
    assert issued.status_code == 201, issued.text
    assert issued.headers["ratelimit-policy"] == '"subject-60s";q=30;w=60'
    remaining_header = issued.headers["ratelimit"]
    assert remaining_header.startswith('"subject-60s";r=9;t=')
    [limit] = usage.json()["limits"]
    assert {k: v for k, v in limit.items() if k != "reset_seconds"} == {
        "name": "subject-60s",
        "layer": "subject",
        "limit": 30,
        "period_seconds": 60.0,
        "burst": 10,
        "remaining": 9,
    }
    assert 0 < limit["reset_seconds"] <= 2.0  # one request's worth: 60 s / 30
