"""The token flow: authorize → idempotency → rate limit → mint → answer, its value types, and the runtime
that owns the objects the flow runs on."""

from service.issuing.flow import OverrideNotAllowed, TokenIssuer
from service.issuing.runtime import Readiness, Runtime, open_runtime
from service.issuing.types import (
    ConnectInfo,
    IssueResult,
    ProfileInfo,
    ProfileList,
    TokenRequest,
    TokenResponse,
)

__all__ = [
    "ConnectInfo",
    "IssueResult",
    "OverrideNotAllowed",
    "ProfileInfo",
    "ProfileList",
    "Readiness",
    "Runtime",
    "TokenIssuer",
    "TokenRequest",
    "TokenResponse",
    "open_runtime",
]
