"""The token-issuing flow: authorize → idempotency → rate limit → mint → answer (DESIGN.md §1).

Authentication happens before this (the handler verifies the JWT); everything here assumes a verified caller.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import NoReturn

import msgspec

from service.auth import CallerIdentity, may_use
from service.auth.identity import is_anonymous
from service.catalogue import catalogue, today
from service.config import BudgetConfig, ProfileConfig, Settings
from service.errors import BudgetExhausted, CallerBlocked, ProfileForbidden, ProfileNotFound, RateLimited
from service.issuing.idempotency import (
    Claim,
    IdempotencyStore,
    IdempotencyStoreUnavailableError,
    MemoryIdempotencyStore,
    StoredAnswer,
    store_key,
)
from service.issuing.types import (
    BudgetUsage,
    ConnectInfo,
    IssueResult,
    LimitUsage,
    ProfileInfo,
    ProfileUsage,
    TokenRequest,
    TokenResponse,
    Usage,
)
from service.logging import bind_request, fingerprint, get_logger
from service.metrics import Metrics
from service.ratelimit import (
    Decision,
    FailMode,
    LimitCheck,
    RateLimiter,
    block_ids,
    budget_checks,
    checks_for,
    ratelimit_headers,
)
from service.tracing import NO_TRACING, Tracing
from service.upstream import API_VERSION, TokenMinter, live_endpoint, public_config

log = get_logger("livetoken.audit")
PLAN_CACHE_SIZE = 4096


class OverrideNotAllowed(ProfileForbidden):
    slug, title = "override-not-allowed", "Override not allowed"
    default_detail = "This profile does not allow that voice."


def _reset_of(decision: Decision, check: LimitCheck) -> float:
    return next(s.reset_after for s in decision.states if s.check is check)


class TokenIssuer:
    """Orchestrates one token request for a verified caller."""

    def __init__(  # noqa: PLR0917 - the flow is wired in one place (issuing/runtime.py) from its parts
        self,
        settings: Settings,
        limiter: RateLimiter,
        idempotency: IdempotencyStore,
        minter: TokenMinter,
        metrics: Metrics,
        fail_mode: FailMode,
        *,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self._settings = settings
        self._tracing = tracing
        self._profiles = settings.profiles
        self._limits = settings.file.limits
        self._budgets = settings.file.budgets
        self._limiter = limiter
        self._idempotency = idempotency
        self._idempotency_fallback = MemoryIdempotencyStore()
        self._minter = minter
        self._metrics = metrics
        self._fail_mode = fail_mode
        self._endpoint = live_endpoint(settings.env.gemini_base_url)
        # (caller key, tenant, profile) -> (valid until, checks, block ids): see _plan.
        self._plans: OrderedDict[tuple[str, str | None, str], tuple[float, tuple[LimitCheck, ...], list[str]]] = (
            OrderedDict()
        )
        # The locked configs never change: render their public JSON once.
        self._configs = {
            (name, voice): public_config(minter.constraints(name, voice))
            for name, p in self._profiles.items()
            for voice in (None, *p.allowed_voices)
        }

    def profiles_for(self, caller: CallerIdentity) -> list[ProfileInfo]:
        """Profiles this caller may request, with their public description and their model's status today."""
        day = today()
        return [
            ProfileInfo(
                name=name,
                description=p.description,
                model=p.model.removeprefix("models/"),
                model_status=entry.status_on(day) if (entry := catalogue().get(p.model)) else "unknown",
                model_shutdown=entry.shutdown.isoformat() if entry and entry.shutdown else None,
                response_modality=p.modality,
                presentation=p.presentation,
                voice=p.voice,
                allowed_voices=list(p.allowed_voices),
                tools=[t.name for t in p.tools],
                session_ttl_seconds=p.effective_session_ttl,
                new_session_ttl_seconds=float(p.new_session_ttl),
                uses=p.uses,
            )
            for name, p in sorted(self._profiles.items())
            if may_use(p, caller)
        ]

    def _authorize(self, caller: CallerIdentity, req: TokenRequest) -> tuple[ProfileConfig, str | None]:
        profile = self._profiles.get(req.profile)
        if profile is None:
            raise ProfileNotFound
        if not may_use(profile, caller):
            raise ProfileForbidden
        voice = req.voice
        if voice is not None and voice == profile.voice:
            voice = None
        if voice is not None and voice not in profile.allowed_voices:
            raise OverrideNotAllowed
        return profile, voice

    async def issue(
        self, caller: CallerIdentity, req: TokenRequest, idempotency_key: str | None, request_hash: str
    ) -> IssueResult:
        """Run the flow; raises a LivetokenError for every refusal."""
        with self._tracing.span("livetoken.authorize", {"livetoken.profile": req.profile}):
            profile, voice = self._authorize(caller, req)
        bind_request(profile=req.profile)
        idem_key = None
        store = self._idempotency
        with self._tracing.span("livetoken.idempotency") as span:
            span.set_attribute("livetoken.idempotency.outcome", "none" if idempotency_key is None else "claimed")
            if idempotency_key is not None:
                idem_key = store_key(self._limits.key_prefix, caller.idempotency_scope, idempotency_key)
                store, claim = await self._claim(idem_key, request_hash)
                if claim.answer is not None:
                    span.set_attribute("livetoken.idempotency.outcome", "replayed")
                    self._metrics.idempotent_replays.inc()
                    log.info("token_replayed", outcome="replayed")
                    return IssueResult(claim.answer.status, claim.answer.body, {"Idempotent-Replayed": "true"})
        try:
            checks, blocks = self._plan(caller, req.profile, profile)
            with self._tracing.span("livetoken.ratelimit", {"livetoken.ratelimit.checks": len(checks)}) as span:
                # Blocks, rate limits and budgets: one round trip to Redis.
                decision = await self._limiter.acquire(checks, blocks)
                span.set_attribute("livetoken.ratelimit.allowed", decision.allowed)
                if not decision.allowed:
                    self._refuse(decision, req.profile)
            try:
                with self._tracing.span("livetoken.mint", {"livetoken.profile": req.profile}):
                    token = await self._minter.mint(req.profile, voice)
            except Exception:
                await self._limiter.refund(checks, in_memory=decision.in_memory)
                raise
        except Exception:
            if idem_key is not None:
                await store.abandon(idem_key)
            raise
        with self._tracing.span("livetoken.answer"):
            model = token.constraints.model or profile.model
            body = msgspec.json.encode(
                TokenResponse(
                    token=token.name,
                    expire_time=token.expire_text,
                    new_session_expire_time=token.new_session_text,
                    uses=token.uses,
                    profile=req.profile,
                    model=model,
                    api_version=API_VERSION,
                    voice=voice or profile.voice,
                    presentation=profile.presentation,
                    connect=ConnectInfo(
                        base_url=self._endpoint.base_url,
                        websocket_url=self._endpoint.websocket_url,
                        api_version=API_VERSION,
                        model=model,
                        config=self._configs[(req.profile, voice)],
                    ),
                )
            )
            if idem_key is not None:
                ttl = min(float(self._settings.file.server.idempotency_ttl), profile.effective_session_ttl)
                try:
                    await store.complete(idem_key, StoredAnswer(request_hash, 201, body, req.profile), ttl)
                except IdempotencyStoreUnavailableError:
                    # The token is minted and the caller is waiting: answer, and let a retry mint anew.
                    log.warning("idempotency_store_failed", outcome="issued_unrecorded")
            self._metrics.inc(self._metrics.tokens_issued, req.profile)
            for check in checks:
                if check.is_budget:
                    budget = check.layer.removeprefix("budget-")
                    self._metrics.child(self._metrics.budget_units, budget, req.profile).inc(check.cost)
            log.info(
                "token_issued",
                outcome="issued",
                token_fingerprint=fingerprint(token.name),
                model=model,
                uses=token.uses,
                expire_time=token.expire_text,
            )
            return IssueResult(201, body, ratelimit_headers(decision))

    async def _claim(self, idem_key: str, request_hash: str) -> tuple[IdempotencyStore, Claim]:
        """Claim the Idempotency-Key, and the store that holds the claim: Redis, or while Redis is down and the
        fail mode is open, this replica's memory (closed: the fast 503)."""
        pending_ttl = float(self._settings.file.upstream.deadline) + 5.0
        try:
            return self._idempotency, await self._idempotency.begin(idem_key, request_hash, pending_ttl)
        except IdempotencyStoreUnavailableError:
            self._fail_mode.use_fallback()
            fallback = self._idempotency_fallback
            return fallback, await fallback.begin(idem_key, request_hash, pending_ttl)

    def _plan(
        self, caller: CallerIdentity, profile_name: str, profile: ProfileConfig
    ) -> tuple[tuple[LimitCheck, ...], list[str]]:
        """The checks and blocks of a token request, kept per caller and profile between requests (a calendar
        budget's until its window ends): naming a caller's buckets hashes its identity, and a caller asking again
        within minutes is the common case. Bounded; the oldest plan goes first."""
        key = (caller.caller_key, caller.tenant, profile_name)
        now = time.time()
        plan = self._plans.get(key)
        if plan is not None and now < plan[0]:
            return plan[1], plan[2]
        checks = tuple(self.checks(caller, profile_name, profile, now=now))
        until = min((c.window_end for c in checks if c.window_end is not None), default=math.inf)
        blocks = block_ids(caller.caller_key, caller.tenant)
        if len(self._plans) >= PLAN_CACHE_SIZE:
            self._plans.popitem(last=False)
        self._plans[key] = (until, checks, blocks)
        return checks, blocks

    def checks(
        self,
        caller: CallerIdentity,
        profile_name: str | None,
        profile: ProfileConfig | None,
        *,
        now: float | None = None,
    ) -> list[LimitCheck]:
        """The rate rules and budgets a token of `profile_name` is checked against (for GET /v1/usage with no
        profile: every rule and budget of the caller, each at cost 0)."""
        limits = profile.limits if profile is not None else []
        checks = checks_for(
            self._limits, profile_name or "", limits, caller.caller_key, caller.tenant, is_anonymous(caller)
        )
        cost = profile.effective_cost if profile is not None else 0
        return checks + budget_checks(
            self._budgets,
            profile_name,
            cost=cost,
            subject_key=caller.caller_key,
            tenant=caller.tenant,
            now=time.time() if now is None else now,
        )

    async def usage(self, caller: CallerIdentity) -> Usage:
        """What the caller has left of every limit and budget (one read, charging nothing)."""
        checks = self.checks(caller, None, None)
        decision = await self._limiter.peek(checks)
        limits: list[LimitUsage] = []
        budgets: list[BudgetUsage] = []
        left: dict[str, int] = {}  # budget key -> units left
        for state in decision.states:
            c = state.check
            if not c.is_budget:
                limits.append(
                    LimitUsage(c.policy_name, c.layer, c.rate, c.period, c.burst, state.remaining, state.reset_after)
                )
                continue
            left[c.key] = state.remaining
        for budget, check in zip(self._budgets_of(caller), (c for c in checks if c.is_budget), strict=True):
            budgets.append(
                BudgetUsage(
                    name=check.policy_name,
                    layer=budget.layer,
                    units=budget.units,
                    period_seconds=float(budget.period),
                    calendar=budget.reset_time_zone is not None,
                    remaining=left[check.key],
                    reset_seconds=_reset_of(decision, check),
                    profiles=sorted(budget.profiles),
                )
            )
        profiles = []
        for name, profile in sorted(self._profiles.items()):
            if not may_use(profile, caller):
                continue
            counted = [
                left[c.key]
                for budget, c in zip(self._budgets_of(caller), (c for c in checks if c.is_budget), strict=True)
                if not budget.profiles or name in budget.profiles
            ]
            cost = profile.effective_cost
            tokens_left = None if not counted or cost == 0 else min(counted) // cost
            profiles.append(ProfileUsage(name, cost, tokens_left))
        return Usage(limits, budgets, profiles)

    def _budgets_of(self, caller: CallerIdentity) -> list[BudgetConfig]:
        """The budgets that count this caller (tenant budgets only when it has a tenant), in `checks` order."""
        return [b for b in self._budgets if b.layer == "subject" or caller.tenant is not None]

    def _refuse(self, decision: Decision, profile_name: str) -> NoReturn:
        """Raise the refusal `decision` stands for: blocked, a spent budget, or a rate limit."""
        if decision.blocked is not None:
            self._metrics.blocked_requests.inc()
            raise CallerBlocked
        headers = ratelimit_headers(decision)
        spent = [s for s in decision.states if s.retry_after > 0 and s.check.is_budget]
        for state in decision.states:
            if state.retry_after > 0 and not state.check.is_budget:
                self._metrics.inc(self._metrics.rate_limited, state.check.layer)
        if spent:
            for state in spent:
                budget = state.check.layer.removeprefix("budget-")
                self._metrics.child(self._metrics.budget_exhausted, budget, profile_name).inc()
            raise BudgetExhausted(retry_after=max(s.retry_after for s in spent), headers=headers)
        raise RateLimited(retry_after=decision.retry_after, headers=headers)
