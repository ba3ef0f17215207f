"""`/_emulator/…`: introspection and fault injection for tests and benchmarks (not a Google path)."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Any, cast

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, ValidationException

from service.emulator.keys import KEY_STATES, KeyState
from service.emulator.store import LIFETIMES, EmulatorState, Faults, fingerprint


def _state(request: Request[Any, Any, State]) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    if request.headers.get("x-goog-api-key") != state.api_key:
        raise NotAuthorizedException("send the emulator's API key in x-goog-api-key")
    return state


def parse_faults(body: dict[str, Any]) -> Faults:
    """Validate a faults document: {latency_ms, error_rates: {"503": 0.5}, drop_rate, fail_next: [503, "drop"]} for
    auth_tokens, and Live lifetimes in seconds (null: the emulator's flag): max_connection_seconds,
    goaway_lead_seconds, audio_session_seconds, video_session_seconds."""
    try:
        rates = {int(code): float(rate) for code, rate in (body.get("error_rates") or {}).items()}
        fail_next: deque[int | str] = deque()
        for item in body.get("fail_next") or []:
            fail_next.append("drop" if item == "drop" else int(item))
        faults = Faults(
            latency_ms=float(body.get("latency_ms") or 0.0),
            error_rates=rates,
            drop_rate=float(body.get("drop_rate") or 0.0),
            fail_next=fail_next,
            lifetimes={name: _seconds(body[name]) for name in LIFETIMES if body.get(name) is not None},
        )
    except (TypeError, ValueError, AttributeError):
        raise ValidationException(
            "faults: latency_ms, error_rates {code: rate}, drop_rate, fail_next [code|'drop'], "
            f"and seconds (or null) for {', '.join(LIFETIMES)}"
        ) from None
    if faults.latency_ms < 0 or not 0 <= faults.drop_rate <= 1 or any(not 0 <= r <= 1 for r in rates.values()):
        raise ValidationException("faults: latency_ms >= 0 and rates within 0..1")
    lead = faults.lifetimes.get("goaway_lead_seconds", 0.0)
    if lead < 0 or any(seconds <= 0 for name, seconds in faults.lifetimes.items() if name != "goaway_lead_seconds"):
        raise ValidationException("faults: goaway_lead_seconds >= 0 and the other lifetimes > 0")
    return faults


def _seconds(value: Any) -> float:
    """A finite number of seconds (JSON's true/false are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(value)
    return float(value)


class AdminController(Controller):
    """Introspection and control."""

    path = "/_emulator"

    @get("/tokens")
    async def tokens(self, request: Request[Any, Any, State]) -> list[dict[str, Any]]:
        """Every minted token (names fingerprinted)."""
        return [{**t.public(), "name": fingerprint(t.name)} for t in _state(request).tokens.values()]

    @get("/token")
    async def token(self, request: Request[Any, Any, State], name: str) -> Response[Any]:
        """One token by its full name (?name=auth_tokens/…): uses left, expiry, locked setup."""
        record = _state(request).tokens.get(name)
        if record is None:
            return Response({"error": "no such token"}, status_code=404)
        return Response(record.public())

    @get("/requests")
    async def requests(self, request: Request[Any, Any, State]) -> list[dict[str, Any]]:
        """Recent auth_tokens requests exactly as received (API key redacted)."""
        return list(_state(request).requests)

    @get("/sessions")
    async def sessions(self, request: Request[Any, Any, State]) -> list[dict[str, Any]]:
        """Recent Live sessions with the client's and the effective setup."""
        return list(_state(request).sessions)

    @get("/stats")
    async def stats(self, request: Request[Any, Any, State]) -> dict[str, Any]:
        """Counters."""
        state = _state(request)
        return {
            "mint_count": state.mint_count,
            "request_count": state.request_count,
            "tokens": len(state.tokens),
            "sessions": len(state.sessions),
            "open_sessions": len(state.live),
        }

    @get("/faults")
    async def get_faults(self, request: Request[Any, Any, State]) -> dict[str, Any]:
        """Current fault injection."""
        return _state(request).faults.public()

    @post("/faults", status_code=200)
    async def set_faults(self, request: Request[Any, Any, State], data: dict[str, Any]) -> dict[str, Any]:
        """Replace fault injection (see parse_faults). Lifetimes apply to the endings planned from now on: a
        connection opened afterwards, or an open one when it next plans (its goAway, its close, a first frame)."""
        state = _state(request)
        state.faults = parse_faults(data)
        return state.faults.public()

    @delete("/faults", status_code=200)
    async def clear_faults(self, request: Request[Any, Any, State]) -> dict[str, Any]:
        """No faults; the lifetimes are the emulator's flags again."""
        state = _state(request)
        state.faults = Faults()
        return state.faults.public()

    @post("/goaway", status_code=200)
    async def go_away(self, request: Request[Any, Any, State], data: dict[str, Any]) -> dict[str, Any]:
        """Send goAway to every open Live session and close each after `time_left_seconds` (default 0.2)."""
        state = _state(request)
        try:
            time_left = float(data.get("time_left_seconds", 0.2))
        except (TypeError, ValueError):
            raise ValidationException("time_left_seconds must be a number") from None
        sessions = list(state.live)
        for session in sessions:
            task = asyncio.create_task(session.go_away(time_left))
            state.background.add(task)
            task.add_done_callback(state.background.discard)
        return {"sessions": len(sessions)}

    @get("/keys")
    async def keys(self, request: Request[Any, Any, State]) -> list[dict[str, Any]]:
        """API keys by fingerprint: state (valid, revoked, expired, blocked, leaked, unknown) and auth_tokens
        requests, refused and minted with each."""
        return _state(request).keys.public()

    @post("/keys", status_code=200)
    async def set_key(self, request: Request[Any, Any, State], data: dict[str, Any]) -> dict[str, Any]:
        """Add an API key or change its state: {"key": "...", "state": "valid" (default) | "revoked" | "expired" |
        "blocked" | "leaked"}; auth_tokens then answers it as Google does. The emulator's own key keeps opening
        /_emulator/ whatever its state."""
        key, key_state = data.get("key"), data.get("state", "valid")
        if not isinstance(key, str) or not key or any(c.isspace() for c in key) or key_state not in KEY_STATES:
            raise ValidationException(f"keys: a non-empty key without spaces, state one of {', '.join(KEY_STATES)}")
        return _state(request).keys.set(key, cast(KeyState, key_state))

    @post("/reset", status_code=200)
    async def reset(self, request: Request[Any, Any, State]) -> dict[str, Any]:
        """Forget everything."""
        _state(request).reset()
        return {"reset": True}
