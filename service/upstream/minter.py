"""Minting ephemeral tokens with google-genai: bounded retries inside a deadline, behind a circuit breaker.

The SDK builds each profile's request and judges each answer (sdk.py); the bytes travel on the minter's own
kept-alive connections (http1.py). The same code path serves Google and the emulator: only the base URL, API
key and CA file differ.
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
from urllib.parse import urlsplit

import msgspec
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from service.config import ProfileConfig, Secret, UpstreamConfig
from service.config.egress import Egress
from service.errors import UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from service.logging import get_logger
from service.metrics import Metrics
from service.tracing import NO_TRACING, Attributes, Tracing
from service.upstream.circuit import CircuitBreaker
from service.upstream.constraints import build_constraints
from service.upstream.http1 import UpstreamAnswer, UpstreamConnections
from service.upstream.keys import ApiKey, ApiKeyRing, key_refusal
from service.upstream.sdk import sdk_http_options, token_request_sender, upstream_tls

# What one attempt may fail with that says something about Google or the network, and so is classified (and
# maybe retried): no answer in time, an answer that is an error (the SDK's APIError), a connection that failed
# (UpstreamConnectionError is an OSError, as refused, reset and TLS failures are). Anything else is a bug (an SDK
# upgrade, say): it is not retried and never opens the circuit.
ATTEMPT_ERRORS: tuple[type[Exception], ...] = (TimeoutError, genai_errors.APIError, OSError, ssl.SSLError)

log = get_logger("livetoken.upstream")
IDLE_UPSTREAM_SECONDS = 60.0
MAX_KEY_HEADS = 32  # request heads kept, one per API key in use (a key file holds at most 10)
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
    expire_text: str  # the two times as the answer writes them (RFC 3339, `Z`): formatted once, by the mint
    new_session_text: str


def _token_name(body: bytes) -> str:
    try:
        name = msgspec.json.decode(body or b"{}").get("name")
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
        egress: Egress | None = None,
    ) -> None:
        # The SDK flags token creation as experimental on every call; we pin the SDK and test it instead.
        warnings.filterwarnings("ignore", category=genai_errors.ExperimentalWarning)
        self._tracing = tracing
        self.keys = ApiKeyRing((api_key, *fallback_keys), float(upstream.key_cooldown), metrics)
        self._client = genai.Client(api_key=KEY_SET_PER_ATTEMPT, http_options=sdk_http_options(base_url, ca_file))
        self._profiles = profiles
        self._constraints = {name: build_constraints(p) for name, p in profiles.items()}
        self._sender = token_request_sender(self._client)  # fails here, at start-up, on an incompatible SDK
        self._templates = self._build_templates()
        # Idle connections are closed here after a minute, well before Google's front ends drop them (610 s): a
        # pooled connection is never one the server already closed. Through the egress proxy when HTTPS_PROXY names
        # one (and NO_PROXY does not exempt Google's host); no cookies (an API client keeps nothing Google sets).
        self.proxy = (egress or Egress()).proxy_for(self._sender.url)
        self._connections = UpstreamConnections(
            self._sender.url, upstream_tls(ca_file), IDLE_UPSTREAM_SECONDS, self.proxy
        )
        self._heads: dict[str, bytes] = {}  # per API key: the request head the SDK's headers make
        target = urlsplit(self._sender.url)
        self._span_attributes: Attributes = {
            "http.request.method": "POST",
            "url.full": self._sender.url,
            "server.address": target.hostname or "",
            "server.port": target.port or (443 if target.scheme == "https" else 80),
            "network.protocol.version": "1.1",
        }
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
            expire_text, new_session_text = expire.isoformat(), new_session.isoformat()  # ...+00:00
            first, second = (expire_text, new_session_text) if expire_first else (new_session_text, expire_text)
            body = f'{prefix}"{first}"{between}"{second}"{suffix}'.encode()
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
                    answer = await self._send(key, body, budget)
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
            return MintedToken(
                name,
                expire,
                new_session,
                profile.uses,
                constraints,
                expire_text.removesuffix("+00:00") + "Z",
                new_session_text.removesuffix("+00:00") + "Z",
            )

    async def _send(self, key: ApiKey, body: bytes, within: float) -> bytes:
        """One attempt: POST the body with `key`; the answer's body when it is a 200, else the SDK's APIError for
        the answer (ClientError for a 4xx, ServerError for a 5xx), built as the SDK builds it from a response.
        TimeoutError when no answer came `within` seconds."""
        head = self._heads.get(key.fingerprint)
        if head is None:
            if len(self._heads) >= MAX_KEY_HEADS:  # keys rotated out over a long life: start afresh
                self._heads.clear()
            head = self._heads[key.fingerprint] = self._connections.head(
                "POST", self._sender.headers(key.secret.reveal())
            )
        if self._tracing.enabled:
            answer = await self._send_traced(head, body, within)
        else:
            answer = await self._connections.request(head, body, within)
        if answer.status == 200:
            return answer.body
        raise _api_error(answer)

    async def _send_traced(self, head: bytes, body: bytes, within: float) -> UpstreamAnswer:
        """The call as a client span (HTTP semantic conventions; never the key) whose `traceparent` Google gets."""
        with self._tracing.span("POST", self._span_attributes, client=True) as span:
            extra = self._connections.extra_lines(self._tracing.propagation_headers())
            answer = await self._connections.request(head + extra, body, within)
            span.set_attribute("http.response.status_code", answer.status)
            if answer.status >= 400:
                span.set_attribute("error.type", str(answer.status))
            return answer

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
        if isinstance(exc, TimeoutError):
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
        opened = await self._connections.open(connections, float(self._cfg.attempt_timeout))
        log.info("upstream_warmed", connections=opened, asked=connections)
        return opened

    async def aclose(self) -> None:
        """Close the upstream connections and the SDK's client."""
        await self._connections.aclose()
        await self._client.aio.aclose()


def _api_error(answer: UpstreamAnswer) -> genai_errors.APIError:
    """The SDK's error for a non-200 answer, from the JSON body as the SDK reads it (or, for a body that is not
    JSON, its text and the reason phrase, as the SDK does for aiohttp)."""
    details: object = None
    if answer.is_json:
        try:
            details = json.loads(answer.body)
        except ValueError:
            details = None
    if details is None:
        details = {"message": answer.body.decode("utf-8", "replace"), "status": answer.reason}
    try:
        genai_errors.APIError.raise_error(answer.status, details, None)
    except genai_errors.APIError as exc:
        return exc
    return genai_errors.APIError(answer.status, details)  # pragma: no cover - raise_error always raises
