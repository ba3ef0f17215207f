"""Minting ephemeral tokens with google-genai: bounded retries inside a deadline, behind a circuit breaker.

The same code path serves Google and the emulator: only the base URL, API key and CA file differ.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import httpx
import structlog
from google import genai
from google.genai import _common, types
from google.genai import _tokens_converters as tokens_converters
from google.genai import errors as genai_errors
from google.genai import tokens as genai_tokens
from google.genai._api_client import HttpRequest

from service.config import ProfileConfig, Secret, UpstreamConfig
from service.errors import UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from service.metrics import Metrics
from service.upstream.circuit import CircuitBreaker
from service.upstream.constraints import build_constraints

try:  # the SDK sends through httpx2 when it is installed (a fork with its own exception classes)
    import httpx2

    TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError, httpx2.TransportError, aiohttp.ClientError)
    TIMEOUT_ERRORS: tuple[type[Exception], ...] = (TimeoutError, httpx.TimeoutException, httpx2.TimeoutException)
except ImportError:  # pragma: no cover - depends on the SDK's optional dependency
    TRANSPORT_ERRORS = (httpx.TransportError, aiohttp.ClientError)
    TIMEOUT_ERRORS = (TimeoutError, httpx.TimeoutException)

API_VERSION = "v1alpha"  # ephemeral tokens are documented for v1alpha only
log = structlog.get_logger("livetoken.upstream")


@dataclass(frozen=True, slots=True)
class MintedToken:
    """A token as handed to the caller; expiry is computed locally from what we asked for."""

    name: str
    expire_time: datetime
    new_session_expire_time: datetime
    uses: int
    constraints: types.LiveConnectConstraints


def sdk_http_options(base_url: str | None, ca_file: str | None, timeout_ms: int | None = None) -> types.HttpOptions:
    """HttpOptions for talking to the Live API at `base_url` (None = Google), trusting `ca_file` if given.

    The context goes to httpx as `verify` (REST) and to websockets as `ssl` (Live); the SDK keeps only the
    argument each client understands. With no CA file the system trust store is used, as for Google.
    """
    args: dict[str, Any] = {}
    if ca_file is not None:
        ctx = ssl.create_default_context(cafile=ca_file)
        args = {"verify": ctx, "ssl": ctx}
    return types.HttpOptions(
        base_url=base_url,
        api_version=API_VERSION,
        async_client_args=args or None,
        timeout=timeout_ms,
        # Retries are the caller's (the minter's are bounded, inside its deadline): without this the SDK's
        # aiohttp path silently sleeps 1-10 s and retries a dropped connection.
        retry_options=types.HttpRetryOptions(attempts=1),
    )


def sdk_request_body(api_client: Any, config: types.CreateAuthTokenConfig) -> dict[str, Any]:
    """The JSON body `client.aio.auth_tokens.create(config=config)` sends, built by the SDK's own converters.

    TokenMinter calls this once per (profile, voice) at start-up and afterwards only swaps the two expiry
    times: the converters cost ~1 ms of CPU per call, and a profile's constraints never change. A test
    pins that the result equals what the public SDK call puts on the wire.
    """
    params = types.CreateAuthTokenParameters(config=config)
    body = tokens_converters._CreateAuthTokenParameters_to_mldev(api_client, params)
    for internal in ("config", "_url", "_query"):
        body.pop(internal, None)
    body = genai_tokens._convert_bidi_setup_to_token_setup(body, config)
    return dict(_common.encode_unserializable_types(_common.convert_to_dict(body)))


def sdk_http_request(api_client: Any) -> HttpRequest:
    """The SDK's own request for `auth_tokens.create` (URL, API-key and client headers, timeout), built once.

    `client.aio.auth_tokens.create` builds this on every call, then runs it through a tenacity retry loop and
    re-encodes the body; the minter reuses the SDK-built URL and headers, encodes the body as the SDK does, and
    keeps retries to itself (`_async_request_once` is what the SDK's loop calls). A test pins that the request
    Google receives is the public call's: the same path, headers and body.
    """
    return api_client._build_request("post", "auth_tokens", {}, None)  # type: ignore[no-any-return]


def _token_name(body: str | None) -> str:
    try:
        name = json.loads(body or "{}").get("name")
    except (ValueError, AttributeError):
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
    ) -> None:
        # The SDK flags token creation as experimental on every call; we pin the SDK and test it instead.
        warnings.filterwarnings("ignore", category=genai_errors.ExperimentalWarning)
        options = sdk_http_options(base_url, ca_file)
        # Our own aiohttp session: the SDK's default one has trust_env=True, which costs a thread hop per
        # request for proxy/netrc lookups; the service's egress is configured, not inherited from the shell.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            trust_env=False,
        )
        options.aiohttp_client = self._session
        self._client = genai.Client(api_key=api_key.reveal(), http_options=options)
        self._profiles = profiles
        self._constraints = {name: build_constraints(p) for name, p in profiles.items()}
        self._api = self._client.aio._api_client
        now = datetime.now(UTC)
        self._templates = {
            (name, voice): sdk_request_body(
                self._api,
                types.CreateAuthTokenConfig(
                    uses=profiles[name].uses,
                    expire_time=now,
                    new_session_expire_time=now,
                    live_connect_constraints=constraints,
                ),
            )
            for name, by_voice in self._constraints.items()
            for voice, constraints in by_voice.items()
        }
        self._request = sdk_http_request(self._api)
        self._cfg = upstream
        self._metrics = metrics
        self._latency_ok = metrics.upstream_latency.labels(outcome="ok")
        self.circuit = CircuitBreaker(
            upstream.circuit_failure_threshold,
            upstream.circuit_reset_after,
            on_change=lambda s: metrics.circuit_state.set(1 if s == "open" else 0),
        )

    def constraints(self, profile: str, voice: str | None) -> types.LiveConnectConstraints:
        """The locked setup a token for (profile, voice) carries."""
        return self._constraints[profile][voice]

    async def mint(self, profile_name: str, voice: str | None) -> MintedToken:
        """Mint one token, retrying transient failures inside the upstream deadline."""
        if not self.circuit.allow():
            raise UpstreamUnavailable(retry_after=self.circuit.retry_after() or 1.0)
        profile = self._profiles[profile_name]
        constraints = self._constraints[profile_name][voice]
        template = self._templates[(profile_name, voice)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._cfg.deadline
        attempt = 0
        while True:
            now = datetime.now(UTC)
            expire = now + timedelta(seconds=profile.effective_session_ttl)
            new_session = now + timedelta(seconds=profile.new_session_ttl)
            # Timezone-aware datetimes serialised as the SDK does (isoformat), so Google sees an offset.
            body = {**template, "expireTime": expire.isoformat(), "newSessionExpireTime": new_session.isoformat()}
            request = HttpRequest(
                method=self._request.method,
                url=self._request.url,
                headers=dict(self._request.headers),
                data=json.dumps(body).encode(),  # as the SDK encodes it: the same bytes on the wire
                timeout=self._request.timeout,
            )
            budget = min(self._cfg.attempt_timeout, deadline - loop.time())
            started = time.perf_counter()
            try:
                if budget <= 0:
                    raise TimeoutError
                async with asyncio.timeout(budget):
                    response = await self._api._async_request_once(request, False, implicit_retry=False)
            except Exception as exc:
                kind = self._classify(exc, started)
                if kind == "rejected":
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
            self._latency_ok.observe(time.perf_counter() - started)
            name = _token_name(response.response_stream[0] if response.response_stream else None)
            if not name.startswith("auth_tokens/") or len(name) > 512:
                self.circuit.release()
                self._metrics.upstream_errors.labels(kind="malformed").inc()
                raise UpstreamRejected("The Live API returned an unexpected answer.")
            self.circuit.record_success()
            return MintedToken(name, expire, new_session, profile.uses, constraints)

    def _classify(self, exc: Exception, started: float) -> str:
        """Name the failure for metrics and decide: 'rejected' (final) or a retryable kind."""
        elapsed = time.perf_counter() - started
        if isinstance(exc, TIMEOUT_ERRORS):
            kind = "timeout"
        elif isinstance(exc, genai_errors.ClientError):
            kind = "429" if exc.code == 429 else "rejected"
        elif isinstance(exc, genai_errors.APIError):
            kind = "5xx"
        elif isinstance(exc, (*TRANSPORT_ERRORS, OSError, ssl.SSLError)):
            kind = "connection"
        else:
            kind = "unexpected"
        self._metrics.upstream_errors.labels(kind="4xx" if kind == "rejected" else kind).inc()
        self._metrics.upstream_latency.labels(outcome="error").observe(elapsed)
        log.info("upstream_attempt_failed", kind=kind, error_type=type(exc).__name__)
        return kind

    async def aclose(self) -> None:
        """Close the SDK's HTTP client."""
        await self._client.aio.aclose()
        await self._session.close()
