"""The HTTP layer's own response types (the token flow's types live in service/issuing/types.py)."""

from __future__ import annotations

from typing import Literal

import msgspec

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Health(msgspec.Struct, frozen=True):
    """Liveness: the process answers."""

    status: Literal["ok"]


class Problem(msgspec.Struct, frozen=True):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
