"""The token-issuing flow: authorize → idempotency → rate limit → mint → answer (DESIGN.md §1).

Authentication happens before this (the handler verifies the JWT); everything here assumes a verified caller.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
import structlog

from service.auth import CallerIdentity, may_use
from service.config import ProfileConfig, Settings
from service.errors import ProfileForbidden, ProfileNotFound, RateLimited
from service.issuing.idempotency import (
    IdempotencyStore,
    IdempotencyStoreUnavailableError,
    MemoryIdempotencyStore,
    StoredAnswer,
    store_key,
)
from service.issuing.types import ConnectInfo, IssueResult, ProfileInfo, TokenRequest, TokenResponse
from service.logging import fingerprint
from service.metrics import Metrics
from service.ratelimit import FailMode, RateLimiter, checks_for, ratelimit_headers
from service.upstream import API_VERSION, TokenMinter, live_endpoint, public_config

log = structlog.get_logger("livetoken.audit")


class OverrideNotAllowed(ProfileForbidden):
    slug, title = "override-not-allowed", "Override not allowed"
    default_detail = "This profile does not allow that voice."


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


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
    ) -> None:
        self._settings = settings
        self._profiles = settings.profiles
        self._limits = settings.file.limits
        self._limiter = limiter
        self._idempotency = idempotency
        self._idempotency_fallback = MemoryIdempotencyStore()
        self._minter = minter
        self._metrics = metrics
        self._fail_mode = fail_mode
        self._endpoint = live_endpoint(settings.env.gemini_base_url)
        # The locked configs never change: render their public JSON once.
        self._configs = {
            (name, voice): public_config(minter.constraints(name, voice))
            for name, p in self._profiles.items()
            for voice in (None, *p.allowed_voices)
        }

    def profiles_for(self, caller: CallerIdentity) -> list[ProfileInfo]:
        """Profiles this caller may request, with their public description."""
        return [
            ProfileInfo(
                name=name,
                description=p.description,
                model=p.model.removeprefix("models/"),
                response_modality=p.modality,
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
        profile, voice = self._authorize(caller, req)
        structlog.contextvars.bind_contextvars(profile=req.profile)
        idem_key = None
        store = self._idempotency
        if idempotency_key is not None:
            idem_key = store_key(self._limits.key_prefix, caller.caller_key, idempotency_key)
            pending_ttl = float(self._settings.file.upstream.deadline) + 5.0
            try:
                claim = await store.begin(idem_key, request_hash, pending_ttl)
            except IdempotencyStoreUnavailableError:
                self._fail_mode.use_fallback()  # closed: the fast 503; open: this replica remembers the key itself
                store = self._idempotency_fallback
                claim = await store.begin(idem_key, request_hash, pending_ttl)
            if claim.answer is not None:
                self._metrics.idempotent_replays.inc()
                log.info("token_replayed", outcome="replayed")
                return IssueResult(claim.answer.status, claim.answer.body, {"Idempotent-Replayed": "true"})
        try:
            checks = checks_for(self._limits, req.profile, profile.limits, caller.caller_key, caller.tenant)
            decision = await self._limiter.acquire(checks)
            headers = ratelimit_headers(decision)
            if not decision.allowed:
                for state in decision.states:
                    if state.retry_after > 0:
                        self._metrics.inc(self._metrics.rate_limited, state.check.layer)
                raise RateLimited(retry_after=decision.retry_after, headers=headers)
            try:
                token = await self._minter.mint(req.profile, voice)
            except Exception:
                await self._limiter.refund(checks)
                raise
        except Exception:
            if idem_key is not None:
                await store.abandon(idem_key)
            raise
        model = token.constraints.model or profile.model
        body = msgspec.json.encode(
            TokenResponse(
                token=token.name,
                expire_time=_iso(token.expire_time),
                new_session_expire_time=_iso(token.new_session_expire_time),
                uses=token.uses,
                profile=req.profile,
                model=model,
                api_version=API_VERSION,
                voice=voice or profile.voice,
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
        log.info(
            "token_issued",
            outcome="issued",
            token_fingerprint=fingerprint(token.name),
            model=model,
            uses=token.uses,
            expire_time=_iso(token.expire_time),
        )
        return IssueResult(201, body, headers)
