"""Who the caller is, once their JWT has been verified."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.config.rules import ANONYMOUS_ISSUER  # the issuer of anonymous callers, refused for [[issuers]]


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    """A verified caller. `subject` and `tenant` come from the issuer's configured claims."""

    issuer: str
    subject: str
    tenant: str | None
    scopes: frozenset[str]
    claims: Mapping[str, Any] = field(repr=False)
    # What tells apart callers who share a subject: anonymous callers of one app share their app id, so each one's
    # Idempotency-Keys are scoped by a digest of its own App Check token ("" for a user).
    instance: str = ""

    @property
    def caller_key(self) -> str:
        """A stable key for this caller across issuers (per-subject limits, budgets and blocks)."""
        return f"{self.issuer}\x1f{self.subject}"

    @property
    def idempotency_scope(self) -> str:
        """Whose Idempotency-Keys these are: the caller's, and for anonymous callers the App Check token's."""
        return self.caller_key if not self.instance else f"{self.caller_key}\x1f{self.instance}"


def anonymous_caller(app_id: str, app_check_token: str) -> CallerIdentity:
    """A caller with no user JWT, known only by the app its Firebase App Check token names: every anonymous caller
    of one app is one caller to the rate limits (`limits.anonymous`) and budgets; its Idempotency-Keys are its own
    (scoped by a digest of its App Check token, so one device never replays another's token)."""
    digest = hashlib.blake2b(app_check_token.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return CallerIdentity(ANONYMOUS_ISSUER, app_id, None, frozenset(), {}, digest)


def is_anonymous(caller: CallerIdentity) -> bool:
    """True for a caller let in on App Check alone."""
    return caller.issuer == ANONYMOUS_ISSUER
