"""The emulator refuses API keys as Google does (status, message and `error.details`), and keys can be added,
revoked, expired, blocked or reported leaked through `/_emulator/keys` to rehearse a rotation."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from google.genai import errors

from service.logging import fingerprint
from tests.emulator.live_support import client

SERVICE = "generativelanguage.googleapis.com"
INVALID = "API key not valid. Please pass a valid API key."
EXPIRED = "API key expired. Please renew the API key."
BLOCKED = (
    f"Requests to this API {SERVICE} method "
    "google.ai.generativelanguage.v1alpha.AuthTokenService.CreateAuthToken are blocked."
)
LEAKED = "Your API key was reported as leaked. Please use another API key."


def _new_key() -> str:
    return "emulated-key-" + secrets.token_urlsafe(16)


def _error_info(reason: str, **metadata: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": SERVICE, **metadata},
    }


def _localized(message: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message}


def _answer(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


@pytest.mark.parametrize(
    ("state", "answer"),
    [
        pytest.param(
            None,
            _answer(400, "INVALID_ARGUMENT", INVALID, _error_info("API_KEY_INVALID"), _localized(INVALID)),
            id="unknown",
        ),
        pytest.param(
            "revoked",
            _answer(400, "INVALID_ARGUMENT", INVALID, _error_info("API_KEY_INVALID"), _localized(INVALID)),
            id="revoked",
        ),
        pytest.param(
            "expired",
            _answer(400, "INVALID_ARGUMENT", EXPIRED, _error_info("API_KEY_INVALID"), _localized(EXPIRED)),
            id="expired",
        ),
        pytest.param(
            "blocked",
            _answer(
                403,
                "PERMISSION_DENIED",
                BLOCKED,
                _error_info(
                    "API_KEY_SERVICE_BLOCKED",
                    consumer="projects/000000000000",
                    apiName=SERVICE,
                    methodName="google.ai.generativelanguage.v1alpha.AuthTokenService.CreateAuthToken",
                ),
                _localized(BLOCKED),
            ),
            id="blocked",
        ),
        pytest.param("leaked", _answer(403, "PERMISSION_DENIED", LEAKED), id="leaked"),
    ],
)
async def test_a_refused_key_gets_googles_answer_through_the_sdk(
    emulator: Any, state: str | None, answer: dict[str, Any]
) -> None:
    """auth_tokens.create with a key Google would refuse raises the SDK's ClientError carrying exactly Google's
    body (the details a token service uses to tell a bad key from a bad request)."""
    key = _new_key()
    if state is not None:
        emulator.set_key(key)
        emulator.set_key(key, state)
    with pytest.raises(errors.ClientError) as err:
        await client(emulator, key).aio.auth_tokens.create()
    assert (err.value.code, err.value.details) == (answer["error"]["code"], answer)


async def test_added_keys_mint_until_revoked_and_usage_is_counted_by_fingerprint(emulator: Any) -> None:
    """A key added through /_emulator/keys mints; once revoked it gets 400; /_emulator/keys counts requests,
    refusals and mints by fingerprint and never shows a key."""
    key = _new_key()
    emulator.set_key(key)
    token = await client(emulator, key).aio.auth_tokens.create()
    emulator.set_key(key, "revoked")
    with pytest.raises(errors.ClientError) as err:
        await client(emulator, key).aio.auth_tokens.create()
    usage = emulator.key_usage()
    assert str(token.name).startswith("auth_tokens/")
    assert err.value.code == 400
    assert usage[fingerprint(key)] == {
        "key": fingerprint(key),
        "state": "revoked",
        "requests": 2,
        "refused": 1,
        "minted": 1,
    }
    assert emulator.last_request()["key"] == fingerprint(key)
    assert key not in str(emulator.admin("GET", "/keys")) + str(emulator.requests())


async def test_the_emulators_own_key_keeps_the_admin_door_when_refused(emulator: Any) -> None:
    """Revoking the emulator's own key refuses its mints but not /_emulator/ (the test harness keeps control)."""
    try:
        emulator.set_key(emulator.api_key, "revoked")
        with pytest.raises(errors.ClientError) as err:
            await client(emulator, emulator.api_key).aio.auth_tokens.create()
        assert err.value.code == 400
        assert emulator.key_usage()[fingerprint(emulator.api_key)]["state"] == "revoked"
    finally:
        emulator.set_key(emulator.api_key, "valid")


@pytest.mark.parametrize("body", [{"key": "two words"}, {"key": ""}, {"key": "k", "state": "lost"}, {}])
def test_a_malformed_key_change_is_refused(emulator: Any, body: dict[str, Any]) -> None:
    """Keys have no spaces and a known state; anything else is a 400 and changes nothing."""
    with pytest.raises(httpx.HTTPStatusError) as err:
        emulator.admin("POST", "/keys", json=body)
    assert err.value.response.status_code == 400
