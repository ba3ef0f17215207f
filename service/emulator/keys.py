"""The API keys the emulator accepts, and Google's answers for the ones it refuses.

The emulator's own key (emulator.json) is valid from the start and always opens `/_emulator/`. Tests add keys
and change their state through `POST /_emulator/keys` to rehearse a rotation: each refused state answers
with the status, message and `error.details` Google sends for it (as reported from the real API).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from service.logging import fingerprint

KeyState = Literal["valid", "revoked", "expired", "blocked", "leaked"]
KEY_STATES: tuple[str, ...] = get_args(KeyState)
SERVICE = "generativelanguage.googleapis.com"
PROJECT = "projects/000000000000"  # the emulator's stand-in for the key's Cloud project

INVALID = "API key not valid. Please pass a valid API key."
EXPIRED = "API key expired. Please renew the API key."
LEAKED = "Your API key was reported as leaked. Please use another API key."


def _error_info(reason: str, **metadata: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": SERVICE, **metadata},
    }


def _localized(message: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message}


@dataclass(frozen=True, slots=True)
class KeyRefusal:
    """Google's answer for a refused key: status code, message and `error.details`."""

    code: int
    message: str
    details: list[dict[str, Any]]


def refusal_for(state: KeyState | None, version: str) -> KeyRefusal | None:
    """What Google answers for a key in `state` (None: a key it never issued); None for a valid key."""
    if state == "valid":
        return None
    if state == "expired":  # Google keeps the generic reason and says "expired" in the message
        return KeyRefusal(400, EXPIRED, [_error_info("API_KEY_INVALID"), _localized(EXPIRED)])
    if state == "blocked":  # the key's API restrictions leave out the Generative Language API
        method = f"google.ai.generativelanguage.{version}.AuthTokenService.CreateAuthToken"
        message = f"Requests to this API {SERVICE} method {method} are blocked."
        info = _error_info("API_KEY_SERVICE_BLOCKED", consumer=PROJECT, apiName=SERVICE, methodName=method)
        return KeyRefusal(403, message, [info, _localized(message)])
    if state == "leaked":  # Google names no reason here: just the status and the message
        return KeyRefusal(403, LEAKED, [])
    # Unknown or revoked (deleted): the same answer, Google cannot tell them apart.
    return KeyRefusal(400, INVALID, [_error_info("API_KEY_INVALID"), _localized(INVALID)])


class KeyRegistry:
    """Keys by value with their state, and what each key fingerprint was used for (refused or not)."""

    def __init__(self, own_key: str) -> None:
        self.own_key = own_key
        self._states: dict[str, KeyState] = {}
        self._usage: dict[str, dict[str, int]] = {}
        self.reset()

    def reset(self) -> None:
        """Only the emulator's own key, valid; no usage."""
        self._states = {self.own_key: "valid"}
        self._usage = {}

    def set(self, key: str, state: KeyState) -> dict[str, Any]:
        """Add `key` or change its state; its public view."""
        self._states[key] = state
        return self._view(fingerprint(key), state)

    def accepts(self, key: str) -> bool:
        """Whether `key` is a valid API key now."""
        return self._states.get(key) == "valid"

    def check(self, key: str, version: str) -> KeyRefusal | None:
        """Google's refusal for `key`, or None; every call is counted by fingerprint."""
        refusal = refusal_for(self._states.get(key), version)
        usage = self._usage.setdefault(fingerprint(key), {"requests": 0, "refused": 0, "minted": 0})
        usage["requests"] += 1
        if refusal is not None:
            usage["refused"] += 1
        return refusal

    def minted(self, key: str) -> None:
        """A token was minted with `key`."""
        self._usage[fingerprint(key)]["minted"] += 1

    def public(self) -> list[dict[str, Any]]:
        """Every configured key and every key seen, by fingerprint (never the key), with its usage."""
        states = {fingerprint(k): s for k, s in self._states.items()}
        return [self._view(fp, states.get(fp, "unknown")) for fp in {**states, **self._usage}]

    def _view(self, key_fingerprint: str, state: str) -> dict[str, Any]:
        usage = self._usage.get(key_fingerprint, {"requests": 0, "refused": 0, "minted": 0})
        return {"key": key_fingerprint, "state": state, **usage}
