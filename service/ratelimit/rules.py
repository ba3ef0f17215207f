"""Which rules apply to one request, and how a decision is told to the client (IETF RateLimit headers)."""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache

from service.config import LimitRule, LimitsConfig
from service.ratelimit.base import Decision, LimitCheck


def _ident(value: str) -> str:
    """Hash an identity so arbitrary bytes (and `{`/`}`) never reach a Redis key or its hash tag."""
    return hashlib.sha256(value.encode()).hexdigest()[:24]


def _rules(layer: str, tag: str, rules: list[LimitRule], suffix: str = "") -> list[LimitCheck]:
    # `{tag}` is the Redis Cluster hash tag: all rules of one subject (or tenant) share a slot.
    return [
        LimitCheck(
            layer=layer,
            key=f"{{{tag}}}:{suffix}{r.rate}r{float(r.period):g}s{r.effective_burst}b",
            rate=r.rate,
            period=float(r.period),
            burst=r.effective_burst,
        )
        for r in rules
    ]


def checks_for(
    limits: LimitsConfig,
    profile_name: str,
    profile_limits: list[LimitRule],
    subject_key: str,
    tenant: str | None,
) -> list[LimitCheck]:
    """Every rule one token request is checked against: subject, profile, tenant, global."""
    subject = "s:" + _ident(subject_key)
    checks = _rules("subject", subject, limits.subject)
    if profile_limits:
        checks += _rules("profile", subject, profile_limits, f"p:{profile_name}:")
    if tenant is not None and limits.tenant:
        checks += _rules("tenant", "t:" + _ident(tenant), limits.tenant)
    if limits.global_:
        checks += _rules("global", "g", limits.global_)
    return checks


@lru_cache(maxsize=1024)
def _policy_header(policies: tuple[tuple[str, int, float], ...]) -> str:
    return ", ".join(f'"{name}";q={q};w={math.ceil(w)}' for name, q, w in policies)


def ratelimit_headers(decision: Decision) -> dict[str, str]:
    """`RateLimit-Policy` (every rule) and `RateLimit` (the tightest now), per draft-ietf-httpapi-ratelimit-headers."""
    if not decision.states:
        return {}
    policy = _policy_header(tuple((s.check.policy_name, s.check.rate, s.check.period) for s in decision.states))
    tight = min(decision.states, key=lambda s: (s.remaining, -s.retry_after))
    return {
        "RateLimit-Policy": policy,
        "RateLimit": f'"{tight.check.policy_name}";r={max(0, tight.remaining)};t={math.ceil(tight.reset_after)}',
    }
