"""When a Live connection ends: its own limit, the token's expiry or the session limit, whichever comes first.

Google's limits (ai.google.dev live-session): a connection lasts about 10 minutes; a session without context
window compression lasts 15 minutes audio-only and 2 minutes once it carries video; resuming continues the same
session, clock included. Each ending is announced with `goAway` (the lead is configurable) before the close.
The lifetimes are the emulator's flags, or what POST /_emulator/faults set at run time (EmulatorState reads both).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from service.emulator.store import EmulatorState, SessionLineage, TokenRecord

POLICY = 1008


@dataclass(frozen=True)
class Ending:
    """A planned close: when (time.monotonic()), with which code and reason."""

    at: float
    code: int
    reason: str


def session_limit(state: EmulatorState, setup: dict[str, Any], video: bool) -> float | None:
    """Seconds a session may last, or None when context window compression lifts the limit."""
    if "contextWindowCompression" in setup or "context_window_compression" in setup:
        return None
    return state.video_session_seconds if video else state.audio_session_seconds


def session_limit_reason(video: bool, seconds: float) -> str:
    """The close reason at the session limit (well under the 123-byte limit of a close reason)."""
    kind = "audio+video" if video else "audio-only"
    return f"Session limit reached: {kind} sessions last {seconds:g}s without context window compression"


def session_over(state: EmulatorState, setup: dict[str, Any], lineage: SessionLineage) -> str | None:
    """The refusal reason when a resumed session has already used up its time, else None."""
    limit = session_limit(state, setup, lineage.video)
    if limit is not None and time.monotonic() - lineage.started >= limit:
        return session_limit_reason(lineage.video, limit)
    return None


def next_ending(
    state: EmulatorState,
    token: TokenRecord | None,
    lineage: SessionLineage,
    setup: dict[str, Any],
    connected_at: float,
) -> Ending:
    """The earliest of the connection limit, the token's expiry and the session limit (ties: the connection's)."""
    now = time.monotonic()
    endings = [Ending(connected_at + state.max_connection_seconds, 1000, "Connection lifetime reached")]
    if token is not None:
        left = (token.expire_time - datetime.now(UTC)).total_seconds()
        endings.append(Ending(now + left, POLICY, "Token has expired."))
    limit = session_limit(state, setup, lineage.video)
    if limit is not None:
        endings.append(Ending(lineage.started + limit, POLICY, session_limit_reason(lineage.video, limit)))
    return min(endings, key=lambda ending: ending.at)


def time_left(seconds: float) -> str:
    """goAway's timeLeft as a protobuf Duration, to a tenth of a second: "10s" (Google's form), "0.5s"."""
    tenths = round(max(0.0, seconds), 1)
    return f"{int(tenths)}s" if tenths.is_integer() else f"{tenths:g}s"
