"""Minting ephemeral tokens with google-genai: bounded retries inside a deadline, behind a circuit breaker.

The same code path serves Google and the emulator: only the base URL, API key and CA file differ.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import ssl
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import httpx
import msgspec
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from service.config import ProfileConfig, Secret, UpstreamConfig
from service.errors import UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from service.logging import get_logger
from service.metrics import Metrics
from service.tracing import NO_TRACING, Tracing
from service.upstream.circuit import CircuitBreaker
from service.upstream.constraints import build_constraints
from service.upstream.keys import ApiKey, ApiKeyRing, key_refusal
from service.upstream.sdk import sdk_http_options, token_request_sender

try:  # the SDK sends through httpx2 when it is installed (a fork with its own exception classes)
    import httpx2

    TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError, httpx2.TransportError, aiohttp.ClientError)
    TIMEOUT_ERRORS: tuple[type[Exception], ...] = (TimeoutError, httpx.TimeoutException, httpx2.TimeoutException)
except ImportError:  # pragma: no cover - depends on the SDK's optional dependency
    TRANSPORT_ERRORS = (httpx.TransportError, aiohttp.ClientError)
    TIMEOUT_ERRORS = (TimeoutError, httpx.TimeoutException)
# What one attempt may fail with that says something about Google or the network, and so is classified (and
# maybe retried). Anything else is a bug (an SDK upgrade, say): it is not retried and never opens the circuit.
ATTEMPT_ERRORS: tuple[type[Exception], ...] = (
    *TIMEOUT_ERRORS,
    genai_errors.APIError,
    *TRANSPORT_ERRORS,
    OSError,
    ssl.SSLError,
)

log = get_logger("livetoken.upstream")
IDLE_UPSTREAM_SECONDS = 60.0
_EXPIRE_MARK, _NEW_SESSION_MARK = "livetoken:expire-time", "livetoken:new-session-expire-time"
# The SDK client never holds a real key: each attempt carries the key the ring chose in its own headers.
KEY_SET_PER_ATTEMPT = "set-per-attempt-by-the-key-ring"


@dataclass(frozen=True, slots=True)
class MintedToken:
    """A token as handed to the caller; expiry is computed locally from what we asked for."""

    name: str
    expire_time: datetime
    new_session_expire_time: datetime
    uses: int
    constraints: types.LiveConnectConstraints


def _token_name(body: str | None) -> str:
    try:
        name = msgspec.json.decode(body or "{}").get("name")
    except (msgspec.DecodeError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


class TokenMinter:
    """Mints tokens for configured profiles."""

    def __init__(
        self,
        *,
        api_key: Secret,
        base_url: str | None,
        ca_file: str | None,
        profiles: dict[str, ProfileConfig],
        upstream: UpstreamConfig,
        metrics: Metrics,
        fallback_keys: Sequence[Secret] = (),
        tracing: Tracing = NO_TRACING,
    ) -> None:
        # The SDK flags token creation as experimental on every call; we pin the SDK and test it instead.
        warnings.filterwarnings("ignore", category=genai_errors.ExperimentalWarning)
        options = sdk_http_options(base_url, ca_file)
        # Our own aiohttp session: the SDK's default one has trust_env=True, which costs a thread hop per
        # request for proxy/netrc lookups; the service's egress is configured, not inherited from the shell.
        self._session = aiohttp.ClientSession(
            # Idle connections are closed here after a minute, well before Google's front ends drop them
            # (610 s): a pooled connection is never one the server already closed.
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=IDLE_UPSTREAM_SECONDS),
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),  # an API client: nothing Google sets is kept or sent back
            trace_configs=tracing.aiohttp_trace_configs(),  # traced: a client span per call, `traceparent` sent
        )
        self._tracing = tracing
        options.aiohttp_client = self._session
        self.keys = ApiKeyRing((api_key, *fallback_keys), float(upstream.key_cooldown), metrics)
        self._client = genai.Client(api_key=KEY_SET_PER_ATTEMPT, http_options=options)
        self._profiles = profiles
        self._constraints = {name: build_constraints(p) for name, p in profiles.items()}
        self._sender = token_request_sender(self._client)  # fails here, at start-up, on an incompatible SDK
        self._templates = self._build_templates()
        self._cfg = upstream
        self._metrics = metrics
        self._latency_ok = metrics.upstream_latency.labels(outcome="ok")
        self.circuit = CircuitBreaker(
            upstream.circuit_failure_threshold,
            upstream.circuit_reset_after,
            on_change=lambda s: metrics.circuit_state.set(1 if s == "open" else 0),
        )

    def _build_templates(self) -> dict[tuple[str, str | None], tuple[str, str, str, bool]]:
        """Each (profile, voice)'s request body as the SDK encodes it (json.dumps), cut around the two expiry
        times: a mint only fills them in. (prefix, between, suffix, whether expireTime comes first.)"""
        now = datetime.now(UTC)
        templates = {}
        for name, by_voice in self._constraints.items():
            for voice, constraints in by_voice.items():
                body = self._sender.request_body(
                    types.CreateAuthTokenConfig(
                        uses=self._profiles[name].uses,
                        expire_time=now,
                        new_session_expire_time=now,
                        live_connect_constraints=constraints,
                    ),
                )
                text = json.dumps({**body, "expireTime": _EXPIRE_MARK, "newSessionExpireTime": _NEW_SESSION_MARK})
                expire_at, new_session_at = text.index(f'"{_EXPIRE_MARK}"'), text.index(f'"{_NEW_SESSION_MARK}"')
                first, second = sorted((expire_at, new_session_at))
                first_end = first + len(f'"{_EXPIRE_MARK if first == expire_at else _NEW_SESSION_MARK}"')
                second_end = second + len(f'"{_NEW_SESSION_MARK if first == expire_at else _EXPIRE_MARK}"')
                templates[(name, voice)] = (
                    text[:first],
                    text[first_end:second],
                    text[second_end:],
                    first == expire_at,
                )
        return templates

    def reconfigured(self, profiles: dict[str, ProfileConfig], upstream: UpstreamConfig) -> TokenMinter:
        """A minter for a reloaded configuration: new profiles (their locked setups and request templates) and
        retry settings, on this one's HTTP session, SDK client, API keys and circuit breaker. Only the original
        is closed (by the runtime)."""
        other = copy.copy(self)
        other._profiles = profiles
        other._constraints = {name: build_constraints(p) for name, p in profiles.items()}
        other._templates = other._build_templates()
        other._cfg = upstream
        self.keys.set_cooldown(float(upstream.key_cooldown))  # one ring, shared by every generation
        return other

    def constraints(self, profile: str, voice: str | None) -> types.LiveConnectConstraints:
        """The locked setup a token for (profile, voice) carries."""
        return self._constraints[profile][voice]

    async def mint(self, profile_name: str, voice: str | None) -> MintedToken:  # noqa: PLR0915 - one attempt loop: the deadline, retries, key fallback and the circuit read best together
        """Mint one token, retrying transient failures inside the upstream deadline, moving to the next API key
        at once when Google refuses one."""
        if not self.circuit.allow():
            raise UpstreamUnavailable(retry_after=self.circuit.retry_after() or 1.0)
        profile = self._profiles[profile_name]
        constraints = self._constraints[profile_name][voice]
        template = self._templates[(profile_name, voice)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._cfg.deadline
        attempt = 0
        calls = 0  # HTTP calls this mint made (retries and key fallbacks), each an attempt span when traced
        keys = self.keys.attempt_order()
        key = keys[0]
        while True:
            now = datetime.now(UTC)
            expire = now + timedelta(seconds=profile.effective_session_ttl)
            new_session = now + timedelta(seconds=profile.new_session_ttl)
            # Timezone-aware datetimes serialised as the SDK does (isoformat), so Google sees an offset; an ISO
            # time needs no JSON escaping, so the body is the SDK's json.dumps bytes (test_request_body pins it).
            prefix, between, suffix, expire_first = template
            first, second = (expire, new_session) if expire_first else (new_session, expire)
            body = f'{prefix}"{first.isoformat()}"{between}"{second.isoformat()}"{suffix}'
            request = self._sender.request(body.encode(), key.secret.reveal())
            budget = min(self._cfg.attempt_timeout, deadline - loop.time())
            started = time.perf_counter()
            try:
                if budget <= 0:
                    raise TimeoutError
                calls += 1
                with self._tracing.span(
                    "livetoken.mint.attempt",
                    {"livetoken.mint.attempt": calls, "livetoken.upstream.key": key.fingerprint},
                ):
                    async with asyncio.timeout(budget):
                        answer = await self._sender.send_once(request)
            except ATTEMPT_ERRORS as exc:
                kind = self._classify(exc, started)
                if kind == "rejected":
                    following = self._key_after(exc, key, keys)
                    if following is not None:
                        key = following
                        continue  # the same mint, at once, with the next key: not a retry
                    self.circuit.release()
                    raise UpstreamRejected from None
                self.circuit.record_failure()
                attempt += 1
                remaining = deadline - loop.time()
                backoff = random.uniform(0, self._cfg.backoff_base * (2 ** (attempt - 1)))  # noqa: S311 - jitter, not crypto
                if attempt > self._cfg.max_retries or remaining <= backoff or not self.circuit.allow():
                    log.warning("upstream_failed", kind=kind, attempts=attempt)
                    if kind == "timeout":
                        raise UpstreamTimeout from None
                    raise UpstreamUnavailable(retry_after=1.0) from None
                self._metrics.upstream_retries.inc()
                await asyncio.sleep(backoff)
                continue
            self._latency_ok.observe(time.perf_counter() - started, self._tracing.exemplar())
            self.keys.accepted(key)
            name = _token_name(answer)
            if not name.startswith("auth_tokens/") or len(name) > 512:
                self.circuit.release()
                self._metrics.upstream_errors.labels(kind="malformed").inc()
                raise UpstreamRejected("The Live API returned an unexpected answer.")
            self.circuit.record_success()
            return MintedToken(name, expire, new_session, profile.uses, constraints)

    def _key_after(self, exc: Exception, key: ApiKey, keys: tuple[ApiKey, ...]) -> ApiKey | None:
        """If Google refused `key` itself: count it, put it behind the others, and return the key to try next
        (None when it was the last; that is logged)."""
        reason = key_refusal(exc.code, exc.details) if isinstance(exc, genai_errors.APIError) else None
        if reason is None:
            return None
        position = keys.index(key) + 1
        following = keys[position] if position < len(keys) else None
        self.keys.refused(key, reason, next_key=following)
        if following is None:
            log.error("upstream_all_keys_refused", keys=[k.fingerprint for k in keys])
        return following

    def _classify(self, exc: Exception, started: float) -> str:
        """Name the failure for metrics and decide: 'rejected' (final) or a retryable kind."""
        elapsed = time.perf_counter() - started
        if isinstance(exc, TIMEOUT_ERRORS):
            kind = "timeout"
        elif isinstance(exc, genai_errors.ClientError):
            kind = "429" if exc.code == 429 else "rejected"
        elif isinstance(exc, genai_errors.APIError):
            kind = "5xx"
        else:  # transport, OS and TLS errors: the rest of ATTEMPT_ERRORS
            kind = "connection"
        self._metrics.upstream_errors.labels(kind="4xx" if kind == "rejected" else kind).inc()
        self._metrics.upstream_latency.labels(outcome="error").observe(elapsed, self._tracing.exemplar())
        log.info("upstream_attempt_failed", kind=kind, error_type=type(exc).__name__)
        return kind

    async def warm(self, connections: int) -> int:
        """Open `connections` pooled upstream connections before the process says it is ready (a new replica
        added under load is not born cold: 200 first callers would otherwise each pay a TLS handshake)."""
        if connections <= 0:
            return 0
        opened = await self._sender.open_connections(self._session, connections, float(self._cfg.attempt_timeout))
        log.info("upstream_warmed", connections=opened, asked=connections)
        return opened

    async def aclose(self) -> None:
        """Close the SDK's HTTP client."""
        await self._client.aio.aclose()
        await self._session.close()
