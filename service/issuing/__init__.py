"""The token flow: authorize → idempotency → rate limit → mint → answer, its value types, and the runtime
that owns the objects the flow runs on."""

from service.issuing.blocking import Blocking
from service.issuing.flow import OverrideNotAllowed, TokenIssuer
from service.issuing.runtime import Generation, Readiness, Runtime, open_runtime
from service.issuing.types import (
    BudgetUsage,
    ConnectInfo,
    IssueResult,
    LimitUsage,
    ProfileInfo,
    ProfileList,
    ProfileUsage,
    TokenRequest,
    TokenResponse,
    Usage,
)

__all__ = [
    "Blocking",
    "BudgetUsage",
    "ConnectInfo",
    "Generation",
    "IssueResult",
    "LimitUsage",
    "OverrideNotAllowed",
    "ProfileInfo",
    "ProfileList",
    "ProfileUsage",
    "Readiness",
    "Runtime",
    "TokenIssuer",
    "TokenRequest",
    "TokenResponse",
    "Usage",
    "open_runtime",
]
