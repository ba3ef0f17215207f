"""Which rules apply to one request, and how a decision is told to the client (IETF RateLimit headers)."""

from __future__ import annotations

import hashlib
import math
from datetime import date, datetime
from datetime import time as dt_time
from zoneinfo import ZoneInfo

from service.config import BudgetConfig, LimitRule, LimitsConfig
from service.ratelimit.base import Decision, LimitCheck

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


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


def _subject_tag(subject_key: str) -> str:
    return "s:" + _ident(subject_key)


def _tenant_tag(tenant: str) -> str:
    return "t:" + _ident(tenant)


def checks_for(  # noqa: PLR0917 - a request's rules are drawn from these
    limits: LimitsConfig,
    profile_name: str,
    profile_limits: list[LimitRule],
    subject_key: str,
    tenant: str | None,
    anonymous: bool = False,
) -> list[LimitCheck]:
    """Every rate rule one token request is checked against: subject (`anonymous` for callers let in on App Check
    alone, per app), profile, tenant, global."""
    subject = _subject_tag(subject_key)
    own = limits.anonymous if anonymous else limits.subject
    checks = _rules("anonymous" if anonymous else "subject", subject, own)
    if profile_limits:
        checks += _rules("profile", subject, profile_limits, f"p:{profile_name}:")
    if tenant is not None and limits.tenant:
        checks += _rules("tenant", _tenant_tag(tenant), limits.tenant)
    if limits.global_:
        checks += _rules("global", "g", limits.global_)
    return checks


def block_ids(subject_key: str, tenant: str | None) -> list[str]:
    """The blocks that refuse this caller: its own, and its tenant's (each in its own hash tag's slot)."""
    ids = [subject_block(subject_key)]
    if tenant is not None:
        ids.append(tenant_block(tenant))
    return ids


def subject_block(subject_key: str) -> str:
    """The block id of one caller (issuer + subject)."""
    return f"{{{_subject_tag(subject_key)}}}"


def tenant_block(tenant: str) -> str:
    """The block id of one tenant."""
    return f"{{{_tenant_tag(tenant)}}}"


def budget_checks(
    budgets: list[BudgetConfig],
    profile_name: str | None,
    *,
    cost: int,
    subject_key: str,
    tenant: str | None,
    now: float,
) -> list[LimitCheck]:
    """The budgets a token of `profile_name` counts against (all of the caller's when it is None), each
    charging `cost` units. `now` (epoch seconds) places calendar budgets in their current window."""
    checks = []
    for budget in budgets:
        if profile_name is not None and budget.profiles and profile_name not in budget.profiles:
            continue
        if budget.layer == "tenant" and tenant is None:
            continue
        tag = _subject_tag(subject_key) if budget.layer == "subject" else _tenant_tag(tenant or "")
        key = f"{{{tag}}}:b:{budget_name(budget)}"
        window_end = None
        if budget.reset_time_zone is not None:
            start, window_end = calendar_window(now, float(budget.period), budget.reset_time_zone)
            key += f":w{start}"
        checks.append(
            LimitCheck(
                layer=f"budget-{budget.layer}",
                key=key,
                rate=budget.units,
                period=float(budget.period),
                burst=budget.units,
                cost=cost,
                window_end=window_end,
            )
        )
    return checks


def budget_name(budget: BudgetConfig) -> str:
    """A budget's stable identity in keys: its units, period, and which profiles it counts."""
    scope = "" if not budget.profiles else ":" + _ident(",".join(sorted(budget.profiles)))[:8]
    zone = "" if budget.reset_time_zone is None else "@" + budget.reset_time_zone
    return f"{budget.units}u{float(budget.period):g}s{zone}{scope}"


def calendar_window(now: float, period: float, zone: str) -> tuple[int, float]:
    """The calendar window holding `now`: whole days from local midnight in `zone`, `period` seconds long (whole
    days), counted from 1970-01-01 local; returns (the window's first day ordinal, its end in epoch seconds)."""
    tz = ZoneInfo(zone)
    today = datetime.fromtimestamp(now, tz).date()
    days = max(1, round(period / 86400))
    first = today.toordinal() - (today.toordinal() - _EPOCH_ORDINAL) % days
    end = datetime.combine(date.fromordinal(first + days), dt_time(0), tz)
    return first, end.timestamp()


def ratelimit_headers(decision: Decision) -> dict[str, str]:
    """`RateLimit-Policy` (every rule) and `RateLimit` (the tightest now), per draft-ietf-httpapi-ratelimit-headers."""
    states = decision.states
    if not states:
        return {}
    tight = states[0]
    for state in states[1:]:  # the fewest remaining; on a tie, the longest wait
        if state.remaining < tight.remaining or (
            state.remaining == tight.remaining and state.retry_after > tight.retry_after
        ):
            tight = state
    return {
        "RateLimit-Policy": ", ".join([s.check.policy_item for s in states]),
        "RateLimit": f'"{tight.check.policy_name}";r={max(0, tight.remaining)};t={math.ceil(tight.reset_after)}',
    }
