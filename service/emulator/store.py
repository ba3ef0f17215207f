"""What the emulator remembers: minted tokens with their remaining uses, recent requests, sessions, faults."""

from __future__ import annotations

import copy
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.emulator.keys import KeyRegistry
from service.logging import fingerprint

__all__ = ["LIFETIMES", "EmulatorState", "Faults", "SessionLineage", "TokenRecord", "fingerprint"]


@dataclass
class TokenRecord:
    """One minted ephemeral token, as Google would hold it."""

    name: str
    uses: int  # 0 = unlimited
    uses_remaining: int
    expire_time: datetime
    new_session_expire_time: datetime
    setup: dict[str, Any] | None  # bidiGenerateContentSetup as received (None: unconstrained)
    field_mask: list[str] | None  # None: the whole setup is locked
    handles: set[str] = field(default_factory=set)
    sessions: int = 0

    def public(self) -> dict[str, Any]:
        """Introspection view."""
        return {
            "name": self.name,
            "uses": self.uses,
            "uses_remaining": self.uses_remaining,
            "expire_time": self.expire_time.isoformat(),
            "new_session_expire_time": self.new_session_expire_time.isoformat(),
            "locked_setup": copy.deepcopy(self.setup),
            "field_mask": self.field_mask,
            "sessions": self.sessions,
            "resumption_handles": len(self.handles),
        }


@dataclass
class SessionLineage:
    """One Live session across its connections: resuming continues it, with its age and whether it has seen video."""

    token_name: str | None  # None: a session opened with the API key
    started: float = field(default_factory=time.monotonic)
    video: bool = False


LIFETIMES = ("max_connection_seconds", "goaway_lead_seconds", "audio_session_seconds", "video_session_seconds")


@dataclass
class Faults:
    """Fault injection: the auth_tokens endpoint's, and Live lifetimes cut short at run time (`lifetimes`, by the
    names in LIFETIMES, override the emulator's flags until DELETE /_emulator/faults)."""

    latency_ms: float = 0.0
    error_rates: dict[int, float] = field(default_factory=dict)
    drop_rate: float = 0.0
    fail_next: deque[int | str] = field(default_factory=deque)
    lifetimes: dict[str, float] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """Introspection view (a lifetime not overridden shows as null)."""
        return {
            "latency_ms": self.latency_ms,
            "error_rates": {str(k): v for k, v in self.error_rates.items()},
            "drop_rate": self.drop_rate,
            "fail_next": list(self.fail_next),
            **{name: self.lifetimes.get(name) for name in LIFETIMES},
        }


class EmulatorState:
    """All mutable emulator state (one event loop: no locking needed)."""

    def __init__(
        self,
        api_key: str,
        *,
        speed: float = 1.0,
        max_connection_seconds: float = 600.0,
        goaway_lead_seconds: float = 10.0,
        audio_session_seconds: float = 900.0,
        video_session_seconds: float = 120.0,
    ) -> None:
        self.api_key = api_key
        self.keys = KeyRegistry(api_key)  # the keys auth_tokens accepts (api_key among them at first)
        self.speed = speed
        self.configured_lifetimes = {  # the flags' values; faults.lifetimes overrides them at run time
            "max_connection_seconds": max_connection_seconds,
            "goaway_lead_seconds": goaway_lead_seconds,
            "audio_session_seconds": audio_session_seconds,
            "video_session_seconds": video_session_seconds,
        }
        self.tokens: dict[str, TokenRecord] = {}
        self.handles: dict[str, SessionLineage] = {}  # resumption handle -> the session it continues
        self.requests: deque[dict[str, Any]] = deque(maxlen=500)
        self.sessions: deque[dict[str, Any]] = deque(maxlen=500)
        self.faults = Faults()
        self.mint_count = 0
        self.request_count = 0  # every auth_tokens request, refused or not: the attempts Google saw
        self.started = time.time()
        self.live: set[Any] = set()  # LiveSession objects of open connections
        self.background: set[Any] = set()  # tasks started by admin calls, kept referenced until done

    def _lifetime(self, name: str) -> float:
        return self.faults.lifetimes.get(name, self.configured_lifetimes[name])

    @property
    def max_connection_seconds(self) -> float:
        """How long a connection lasts (goAway, then close 1000)."""
        return self._lifetime("max_connection_seconds")

    @property
    def goaway_lead_seconds(self) -> float:
        """How long before a close its goAway comes."""
        return self._lifetime("goaway_lead_seconds")

    @property
    def audio_session_seconds(self) -> float:
        """How long an audio-only session without context window compression lasts, across resumptions."""
        return self._lifetime("audio_session_seconds")

    @property
    def video_session_seconds(self) -> float:
        """How long a session that has received video lasts without context window compression."""
        return self._lifetime("video_session_seconds")

    def new_token(self, **kwargs: Any) -> TokenRecord:
        """Mint and remember a token."""
        name = "auth_tokens/" + secrets.token_urlsafe(32)
        record = TokenRecord(name=name, **kwargs)
        self.tokens[name] = record
        self.mint_count += 1
        return record

    def new_handle(self, token: TokenRecord, lineage: SessionLineage) -> str:
        """A resumption handle bound to `token` that continues the session `lineage`."""
        handle = "resume-" + secrets.token_urlsafe(18)
        token.handles.add(handle)
        self.handles[handle] = lineage
        return handle

    def reset(self) -> None:
        """Forget tokens, requests, sessions, faults and added keys."""
        self.tokens.clear()
        self.handles.clear()
        self.requests.clear()
        self.sessions.clear()
        self.faults = Faults()
        self.keys.reset()
        self.mint_count = 0
        self.request_count = 0
