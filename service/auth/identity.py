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


ANONYMOUS_ISSUER = "firebase-app-check"  # the issuer of anonymous callers: no [[issuers]] entry can be named so


def anonymous_caller(app_id: str) -> CallerIdentity:
    """A caller with no user JWT, known only by the app its Firebase App Check token names: every anonymous caller
    of one app is one caller to the rate limits (`limits.anonymous`) and budgets."""
    return CallerIdentity(ANONYMOUS_ISSUER, app_id, None, frozenset(), {})


def is_anonymous(caller: CallerIdentity) -> bool:
    """True for a caller let in on App Check alone."""
    return caller.issuer == ANONYMOUS_ISSUER
