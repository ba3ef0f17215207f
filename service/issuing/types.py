"""The token flow's own value types: what a caller asks for and what it gets back (the API's wire types).

They live with the flow that owns them; the HTTP layer decodes into and encodes from them, and the OpenAPI
document is generated from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

from service.config import ProfileName, VoiceName


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Ask for a token for one profile; `voice` only where the profile allows overriding it."""

    profile: Annotated[ProfileName, msgspec.Meta(description="Name of a configured profile the caller may use.")]
    voice: VoiceName | None = None  # a voice override: only voices the profile lists in allowed_voices


class ConnectInfo(msgspec.Struct, frozen=True):
    """What a client needs to open the Live session with the token.

    `config` is the locked session config in the Live API's own camelCase JSON: Google's JS SDK takes it as
    its `LiveConnectConfig` unchanged, and so does the Python SDK.
    """

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
    presentation: Literal["voice", "transcript"]
    connect: ConnectInfo


class ProfileInfo(msgspec.Struct, frozen=True):
    """A profile the caller may request tokens for.

    `model_status` is the model's standing in livetoken's catalogue today (`GA`, `preview`, `legacy`, or
    `unknown` for a model the catalogue does not list); `model_shutdown` its announced shutdown date, if any.
    """

    name: str
    description: str
    model: str
    model_status: str
    model_shutdown: str | None
    response_modality: Literal["AUDIO", "TEXT"]
    presentation: Literal["voice", "transcript"]
    voice: str | None
    allowed_voices: list[str]
    tools: list[str]
    session_ttl_seconds: float
    new_session_ttl_seconds: float
    uses: int


class ProfileList(msgspec.Struct, frozen=True):
    """Profiles available to the caller."""

    profiles: list[ProfileInfo]


@dataclass(frozen=True, slots=True)
class IssueResult:
    """The flow's answer: status, JSON body bytes, extra headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class LimitUsage(msgspec.Struct, frozen=True):
    """Where one rate limit stands for the caller, in the `RateLimit-Policy` / `RateLimit` headers' terms: `name`
    is the policy's name, `limit` its quota `q` (requests per `period_seconds`, its window `w`), `remaining` and
    `reset_seconds` the `r` and `t` of `RateLimit`; `burst` is how many requests may pass at once (what
    `remaining` is at most)."""

    name: str
    layer: str
    limit: int
    period_seconds: float
    burst: int
    remaining: int
    reset_seconds: float


class BudgetUsage(msgspec.Struct, frozen=True):
    """What is left of one spend budget, in cost units."""

    name: str
    layer: Literal["subject", "tenant"]
    units: int
    period_seconds: float
    calendar: bool
    remaining: int
    reset_seconds: float
    profiles: list[str]


class ProfileUsage(msgspec.Struct, frozen=True):
    """How many more tokens of one profile the budgets allow (null: no budget counts this profile)."""

    name: str
    cost: int
    tokens_left: int | None


class Usage(msgspec.Struct, frozen=True):
    """What this caller has left: rate limits, budgets, and tokens per profile."""

    limits: list[LimitUsage]
    budgets: list[BudgetUsage]
    profiles: list[ProfileUsage]
