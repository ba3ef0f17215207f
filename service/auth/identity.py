"""Who the caller is, once their JWT has been verified."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    """A verified caller. `subject` and `tenant` come from the issuer's configured claims."""

    issuer: str
    subject: str
    tenant: str | None
    scopes: frozenset[str]
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def caller_key(self) -> str:
        """A stable key for this caller across issuers (used for idempotency and per-subject limits)."""
        return f"{self.issuer}\x1f{self.subject}"
