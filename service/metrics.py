"""Prometheus metrics on an app-owned registry (never the global one), all prefixed `livetoken_`.

Label values are bounded: routes are templates, reasons are error slugs, profiles come from config.
Never a subject, tenant, token or key. What the request path counts is a LoopCounter or LoopHistogram
(loop_metrics.py: the same exposition without a lock per count); the rest are prometheus_client's own.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, generate_latest
from prometheus_client.exposition import choose_encoder

from service.loop_metrics import LoopCounter, LoopHistogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric the service exports."""

    def __init__(self, version: str = "0") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self._children: dict[tuple[LoopCounter | Counter, str], Any] = {}
        self._labelled: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self.requests_in_flight = 0  # read by the gauge at scrape time: the hot path adds and subtracts an int
        r = self.registry
        self.build_info = Info("livetoken_build", "Build information.", registry=r)
        self.build_info.info({"version": version})
        self.requests = LoopCounter(
            "livetoken_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_latency = LoopHistogram(
            "livetoken_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("livetoken_http_requests_in_flight", "Requests being served now.", registry=r)
        self.in_flight.set_function(lambda: self.requests_in_flight)
        self.tokens_issued = LoopCounter(
            "livetoken_tokens_issued", "Ephemeral tokens minted and handed out, by profile.", ["profile"], registry=r
        )
        self.idempotent_replays = LoopCounter(
            "livetoken_idempotent_replays", "Answers replayed for a repeated Idempotency-Key.", (), registry=r
        )
        self.rejections = LoopCounter(
            "livetoken_rejections", "Requests refused, by reason (the problem type's slug).", ["reason"], registry=r
        )
        self.rate_limited = LoopCounter(
            "livetoken_rate_limited", "Requests refused by the rate limiter, by layer.", ["layer"], registry=r
        )
        self.upstream_latency = LoopHistogram(
            "livetoken_upstream_request_duration_seconds",
            "Latency of one mint attempt against the Live API.",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "livetoken_upstream_errors",
            "Failed mint attempts, by kind (timeout, 4xx, 429, 5xx, connection).",
            ["kind"],
            registry=r,
        )
        self.upstream_retries = Counter("livetoken_upstream_retries", "Mint attempts that were retries.", registry=r)
        self.upstream_key_refusals = Counter(
            "livetoken_upstream_key_refusals",
            "Mint attempts Google refused for the API key itself (invalid, expired, blocked or exposed), by key "
            "fingerprint (sha256: prefix, only configured keys) and ErrorInfo reason; the mint moved to the next key.",
            ["key", "reason"],
            registry=r,
        )
        self.upstream_keys = Gauge(
            "livetoken_upstream_keys",
            "Configured Gemini API keys, by state: usable, or cooling (refused within upstream.key_cooldown).",
            ["state"],
            registry=r,
        )
        self.upstream_key_file_reloads = Counter(
            "livetoken_upstream_key_file_reloads",
            "Changes of LIVETOKEN_GEMINI_API_KEY_FILE, by outcome: ok, or refused (the running keys stay).",
            ["outcome"],
            registry=r,
        )
        self.profile_model_retiring = Gauge(
            "livetoken_profile_model_retiring",
            "1 while a profile's model shuts down within 60 days (Google's announced date, livetoken models), else 0.",
            ["profile", "model"],
            registry=r,
        )
        self.circuit_state = Gauge(
            "livetoken_upstream_circuit_open", "1 while the upstream circuit breaker is open.", registry=r
        )
        self.ratelimit_latency = LoopHistogram(
            "livetoken_ratelimit_check_duration_seconds",
            "Latency of one rate-limit check, by backend.",
            ["backend"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            "livetoken_redis_errors",
            "Redis operations that failed, by operation (acquire, peek, refund, ping, budget_usage, blocks, "
            "idempotency) and kind (timeout, connection, reply: an error or malformed reply).",
            ["operation", "kind"],
            registry=r,
        )
        self.ratelimit_fallback = Gauge(
            "livetoken_ratelimit_fallback_active",
            "1 while Redis is unavailable and the per-replica in-memory limiter decides (fail_mode=open).",
            registry=r,
        )
        self.ratelimit_remembered = LoopCounter(
            "livetoken_ratelimit_remembered_refusals",
            "Refusals repeated from a verdict Redis gave earlier (until its retry time), without a Redis call.",
            (),
            registry=r,
        )
        self.ratelimit_fallback_decisions = Counter(
            "livetoken_ratelimit_fallback_decisions", "Rate-limit decisions made by the in-memory fallback.", registry=r
        )
        self.jwks_refreshes = Counter(
            "livetoken_jwks_refreshes", "JWKS fetches, by outcome (ok, error, cooldown).", ["outcome"], registry=r
        )
        self.jwks_keys_skipped = Counter(
            "livetoken_jwks_keys_skipped",
            "JWKS keys left out of a refresh because they cannot verify this issuer's tokens, by reason.",
            ["reason"],
            registry=r,
        )
        self.jwt_rejections = LoopCounter(
            "livetoken_jwt_rejections",
            "JWTs refused, by internal check (never shown to clients).",
            ["check"],
            registry=r,
        )
        self.app_check_rejections = LoopCounter(
            "livetoken_app_check_rejections",
            "Firebase App Check tokens refused, by internal check (never shown to clients).",
            ["check"],
            registry=r,
        )
        self.budget_units = LoopCounter(
            "livetoken_budget_units_spent",
            "Budget cost units spent by issued tokens, by budget layer and profile.",
            ["layer", "profile"],
            registry=r,
        )
        self.budget_exhausted = LoopCounter(
            "livetoken_budget_exhausted",
            "Requests refused because a budget was spent, by budget layer and profile.",
            ["layer", "profile"],
            registry=r,
        )
        self.config_reloads = Counter(
            "livetoken_config_reloads",
            "Configuration reloads (SIGHUP or a changed file), by outcome (ok, refused).",
            ["outcome"],
            registry=r,
        )
        self.blocked_requests = LoopCounter(
            "livetoken_blocked_requests", "Requests refused because the caller or tenant is blocked.", (), registry=r
        )
        self.block_changes = Counter(
            "livetoken_block_changes",
            "Blocks put in place or lifted through this replica's admin endpoint, by action (block, unblock).",
            ["action"],
            registry=r,
        )
        self.admission_queue_depth = Gauge(
            "livetoken_admission_queue_depth",
            "Token requests waiting for a place now (server.max_in_flight are taken; server.queue_timeout bounds "
            "the wait).",
            registry=r,
        )
        self.admission_busy = Gauge(
            "livetoken_admission_busy", "Token-request places taken now (of livetoken_admission_slots).", registry=r
        )
        self.admission_slots = Gauge(
            "livetoken_admission_slots",
            "Token requests this process works on at once: server.max_in_flight within the open-files limit.",
            registry=r,
        )
        self.admission_wait = LoopHistogram(
            "livetoken_admission_wait_seconds",
            "How long token requests that found every place taken waited, by outcome: admitted, or shed (503 "
            "overloaded; 0 for those refused on arrival).",
            ["outcome"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.admission_shed = LoopCounter(
            "livetoken_admission_shed",
            "Token requests refused 503 overloaded, by why: queue_full (server.max_queue, or queue_timeout 0), "
            "wait_too_long (the measured drain rate says it would not start in time), timed_out (waited "
            "server.queue_timeout).",
            ["why"],
            registry=r,
        )
        self.open_connections = Gauge(
            "livetoken_open_connections", "HTTP connections open now, idle ones included.", registry=r
        )
        self.connections_shed = Counter(
            "livetoken_connections_shed",
            "Connections the server closed to protect itself, by reason (header_timeout, idle_evicted, over_limit).",
            ["reason"],
            registry=r,
        )

    def count_request(
        self, route: str, method: str, status: int, seconds: float, exemplar: dict[str, str] | None = None
    ) -> None:
        """One answered request; labelled children are cached (labels() costs more than inc()).

        `exemplar` (`{"trace_id": …}` of a traced request) is kept with the latency's bucket: OpenMetrics
        scrapes show it, so a dashboard can jump from a slow bucket to that request's trace."""
        key = (route, method, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(route=route, method=method, status=str(status))
        counter.inc()
        latency = self._latency_children.get(route)
        if latency is None:
            latency = self._latency_children[route] = self.request_latency.labels(route=route)
        latency.observe(seconds, exemplar)

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, cached: labels() validates and locks on every call (bounded label values,
        so the cache is bounded too)."""
        key = (metric, labels)
        found = self._labelled.get(key)
        if found is None:
            found = self._labelled[key] = metric.labels(*labels)
        return found

    def inc(self, counter: LoopCounter | Counter, label: str) -> None:
        """`counter.labels(label).inc()` for a one-label counter on a hot path, with the child cached.

        Label values are bounded by design (slugs, layers, profiles, checks), so the cache is too.
        """
        key = (counter, label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(label)
        child.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """This registry in the format a scraper's Accept header asks for, and its content type: OpenMetrics
        (with exemplars) for `application/openmetrics-text`, else the Prometheus text format."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type
