"""The error tree: raised where things happen, mapped to RFC 9457 problem+json in one place (api/problems.py).

Every class has a stable `slug`: the last part of its problem `type` URI and the `reason` label in metrics.
Messages never carry secrets, tokens or upstream internals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

PROBLEM_BASE = "https://livetoken.dev/problems/"


class LivetokenError(Exception):
    """Base of every error that becomes an HTTP problem."""

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"
    default_detail: str = "The service failed unexpectedly."

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.retry_after = retry_after
        self.extra_headers: dict[str, str] = dict(headers or {})
        super().__init__(self.detail)

    @property
    def type_uri(self) -> str:
        """The problem's stable `type`."""
        return PROBLEM_BASE + self.slug

    def headers(self) -> dict[str, str]:
        """Response headers this problem carries (Retry-After, WWW-Authenticate, …)."""
        out = dict(self.extra_headers)
        if self.retry_after is not None:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return out


class MalformedRequest(LivetokenError):
    status, slug, title = 400, "malformed-request", "Malformed request"
    default_detail = "The request body is not valid."


class InvalidToken(LivetokenError):
    """Any JWT failure. One generic message: never say which check failed."""

    status, slug, title = 401, "invalid-token", "Invalid token"
    default_detail = "The bearer token is missing or invalid."

    def __init__(self, detail: str | None = None) -> None:
        # The detail given by the raiser is for debugging logs at most; the client always sees the generic one.
        self.internal_reason = detail or "invalid"
        super().__init__(None, headers={"WWW-Authenticate": 'Bearer realm="livetoken", error="invalid_token"'})


class AppCheckInvalid(LivetokenError):
    """A profile that requires Firebase App Check got no valid `X-Firebase-AppCheck` token. One generic message:
    never which check failed."""

    status, slug, title = 401, "app-check-invalid", "App Check token missing or invalid"
    default_detail = "This profile needs a valid Firebase App Check token in X-Firebase-AppCheck."

    def __init__(self, detail: str | None = None) -> None:
        self.internal_reason = detail or "invalid"
        super().__init__(None, headers={"WWW-Authenticate": 'AppCheck realm="livetoken"'})


class ProfileForbidden(LivetokenError):
    status, slug, title = 403, "profile-forbidden", "Profile not allowed"
    default_detail = "Your credentials do not allow this profile."


class ProfileNotFound(LivetokenError):
    status, slug, title = 404, "profile-not-found", "Unknown profile"
    default_detail = "There is no such profile."


class NotFound(LivetokenError):
    status, slug, title = 404, "not-found", "Not found"
    default_detail = "There is nothing at this path."


class MethodNotAllowed(LivetokenError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"
    default_detail = "This path does not accept that method."


class CallerBlocked(LivetokenError):
    """An operator blocked this caller or its tenant (`livetoken block`); the block ends by itself."""

    status, slug, title = 403, "caller-blocked", "Caller blocked"
    default_detail = "This caller is blocked from getting tokens; contact the operator."


class AdminForbidden(LivetokenError):
    """The caller is authenticated but not an operator (`[admin]`: its issuer and `require` rule)."""

    status, slug, title = 403, "admin-forbidden", "Not an operator"
    default_detail = "This token does not carry the operator's claims."


class BudgetExhausted(LivetokenError):
    """A spend budget (`[[budgets]]`) has no units left for this token until its reset."""

    status, slug, title = 429, "budget-exhausted", "Budget exhausted"
    default_detail = "The budget for this caller is spent until it resets; see Retry-After."


class OriginNotAllowed(LivetokenError):
    """A browser's CORS preflight from an origin this deployment does not serve."""

    status, slug, title = 403, "origin-not-allowed", "Origin not allowed"
    default_detail = "This origin may not call the service from a browser; ask its operator to add it."


class RequestRefused(LivetokenError):
    """Another 4xx the HTTP framework answers by itself (its status is kept; its text is not shown)."""

    slug, title = "request-refused", "Request refused"
    default_detail = "The request was refused."

    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status


class IdempotencyInProgress(LivetokenError):
    status, slug, title = 409, "idempotency-in-progress", "Request in progress"
    default_detail = "A request with this Idempotency-Key is still being processed; retry shortly."


class PayloadTooLarge(LivetokenError):
    status, slug, title = 413, "payload-too-large", "Payload too large"
    default_detail = "The request body is too large."


class UnsupportedMediaType(LivetokenError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"
    default_detail = "Send the body as application/json."


class IdempotencyKeyReused(LivetokenError):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency-Key reused"
    default_detail = "This Idempotency-Key was already used with a different request body."


class RateLimited(LivetokenError):
    status, slug, title = 429, "rate-limited", "Too many requests"
    default_detail = "You have asked for too many tokens; retry after the indicated time."


class UpstreamRejected(LivetokenError):
    status, slug, title = 502, "upstream-rejected", "Upstream rejected the request"
    default_detail = "The Live API refused to issue a token."


class UpstreamUnavailable(LivetokenError):
    status, slug, title = 503, "upstream-unavailable", "Upstream unavailable"
    default_detail = "The Live API is unavailable; retry later."


class RateLimiterUnavailable(LivetokenError):
    status, slug, title = 503, "rate-limiter-unavailable", "Rate limiter unavailable"
    default_detail = "The rate limiter's store is unavailable; retry later."


class Overloaded(LivetokenError):
    """This process is at its bound of token requests in flight: a fast refusal, not a slow answer for everyone."""

    status, slug, title = 503, "overloaded", "Overloaded"
    default_detail = "This instance is at capacity; retry shortly."


class ServiceShuttingDown(LivetokenError):
    status, slug, title = 503, "shutting-down", "Shutting down"
    default_detail = "This instance is shutting down; retry on another."


class UpstreamTimeout(LivetokenError):
    status, slug, title = 504, "upstream-timeout", "Upstream timeout"
    default_detail = "The Live API did not answer in time."


ALL_PROBLEMS: tuple[type[LivetokenError], ...] = (
    MalformedRequest,
    InvalidToken,
    ProfileForbidden,
    ProfileNotFound,
    NotFound,
    MethodNotAllowed,
    CallerBlocked,
    AdminForbidden,
    BudgetExhausted,
    OriginNotAllowed,
    RequestRefused,
    IdempotencyInProgress,
    PayloadTooLarge,
    UnsupportedMediaType,
    IdempotencyKeyReused,
    RateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
    RateLimiterUnavailable,
    Overloaded,
    ServiceShuttingDown,
    UpstreamTimeout,
    LivetokenError,
)
