"""Request and response types of the HTTP API (msgspec structs; the OpenAPI schema is generated from them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

ProfileName = Annotated[str, msgspec.Meta(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
VoiceName = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z]+$")]


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Ask for a token for one profile; `voice` only where the profile allows overriding it."""

    profile: ProfileName
    voice: VoiceName | None = None


class ConnectInfo(msgspec.Struct, frozen=True):
    """What a client needs to open the Live session with the token."""

    base_url: str
    websocket_url: str
    api_version: str
    model: str
    config: dict[str, Any]


class TokenResponse(msgspec.Struct, frozen=True):
    """A freshly minted, single-use, locked ephemeral token."""

    token: str
    expire_time: str
    new_session_expire_time: str
    uses: int
    profile: str
    model: str
    api_version: str
    voice: str | None
    connect: ConnectInfo


class ProfileInfo(msgspec.Struct, frozen=True):
    """A profile the caller may request tokens for."""

    name: str
    description: str
    model: str
    response_modality: Literal["AUDIO", "TEXT"]
    voice: str | None
    allowed_voices: list[str]
    tools: list[str]
    session_ttl_seconds: float
    new_session_ttl_seconds: float
    uses: int


class ProfileList(msgspec.Struct, frozen=True):
    """Profiles available to the caller."""

    profiles: list[ProfileInfo]


class Health(msgspec.Struct, frozen=True):
    """Liveness: the process answers."""

    status: Literal["ok"]


class Readiness(msgspec.Struct, frozen=True):
    """Readiness: whether this instance should receive traffic, and why."""

    status: Literal["ready", "not_ready"]
    config: Literal["loaded"]
    rate_limiter: Literal["ok", "fallback", "unavailable"]
    rate_limiter_backend: Literal["redis", "memory"]
    upstream_circuit: Literal["closed", "open", "half_open"]
    jwks: Literal["ok", "stale", "unavailable"]


class Problem(msgspec.Struct, frozen=True):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
