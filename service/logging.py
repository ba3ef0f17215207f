"""structlog set-up: JSON off a terminal, console on one; per-request context; redaction of secrets."""

from __future__ import annotations

import contextvars
import hashlib
import logging
import re
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any, Literal

import msgspec
import structlog

# Anything shaped like a credential is masked before a line is written, whatever field it sits in:
# minted tokens, JWTs, Google API keys, bearer headers. Defence in depth: code never logs them on purpose.
# One alternation, so each string is scanned once.
_SECRETS = re.compile(
    r"auth_tokens/[A-Za-z0-9_\-.~]+"
    r"|eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.?[A-Za-z0-9_\-]*"
    r"|AIza[0-9A-Za-z_\-]{20,}"
    r"|(?i:(?:bearer|token)\s+[A-Za-z0-9_\-.~+/=]{8,})"
)
_SENSITIVE_KEYS = frozenset({"authorization", "api_key", "token", "jwt", "x-goog-api-key", "password", "secret"})


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible name for a secret (for audit lines and correlation)."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]


TraceIds = Callable[[], tuple[str, str] | None]
_trace_ids: TraceIds | None = None  # set while tracing is on (service/tracing): the current span's ids, if any


def correlate_traces(current: TraceIds | None) -> None:
    """Have log lines carry `trace_id` and `span_id` read by `current` (tracing switches it on; None: off)."""
    global _trace_ids  # noqa: PLW0603 - process-wide, like the structlog configuration it feeds
    _trace_ids = current


# The request's own log context (request_id, subject, tenant, profile): one context variable holding one dict per
# request, replaced (not edited) as the request's steps add to it. structlog's contextvars module keeps a
# variable per key, and clearing it walks every variable of the context: with a clear at each end of a request
# and three binds, that was ~6% of a refused request's CPU.
_REQUEST_CONTEXT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "livetoken_request_context", default=None
)


def begin_request_context(**values: Any) -> contextvars.Token[dict[str, Any] | None]:
    """Start a request's log context holding `values` (the middleware; end it with end_request_context)."""
    return _REQUEST_CONTEXT.set(dict(values))


def end_request_context(token: contextvars.Token[dict[str, Any] | None]) -> None:
    """Put back the context that was current before begin_request_context."""
    _REQUEST_CONTEXT.reset(token)


def bind_request(**values: Any) -> None:
    """Add `values` to every later log line of this request (nothing outside a request). A new dict each time:
    a task the request started earlier (a JWKS refresh) keeps the context it started with."""
    context = _REQUEST_CONTEXT.get()
    if context is not None:
        _REQUEST_CONTEXT.set({**context, **values})


def merge_request_context(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the request's log context, under what the line itself says (as merge_contextvars)."""
    context = _REQUEST_CONTEXT.get()
    if context:
        for key, value in context.items():
            event_dict.setdefault(key, value)
    return event_dict


def add_trace_ids(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the current span's `trace_id` and `span_id`; with tracing off, one None check."""
    current = _trace_ids
    if current is not None:
        ids = current()
        if ids is not None:
            event_dict["trace_id"], event_dict["span_id"] = ids
    return event_dict


def _may_hold_secret(value: str) -> bool:
    # Every pattern above holds one of these four (lower-cased); most values hold none, and four substring
    # tests cost a tenth of the regex's scan.
    lowered = value.lower()
    return "token" in lowered or "eyj" in lowered or "aiza" in lowered or "bearer" in lowered


def _scrub(value: str) -> str:
    return _SECRETS.sub("[REDACTED]", value) if _may_hold_secret(value) else value


class _Timestamp:
    """structlog processor: `timestamp`, ISO 8601 UTC with microseconds (`2026-11-27T03:20:00.123456Z`); the
    date and time of day are formatted once a second, not per line."""

    __slots__ = ("_formatted",)

    def __init__(self) -> None:
        self._formatted = (-1, "")  # (second, its text): one tuple, so a line logged from another thread never
        # pairs one second's text with another's

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        now = time.time()
        second = int(now)
        formatted = self._formatted
        if formatted[0] != second:
            formatted = self._formatted = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        event_dict["timestamp"] = f"{formatted[1]}.{int((now - second) * 1_000_000):06d}Z"
        return event_dict


_sensitive_key: dict[str, bool] = {}  # key -> whether its value is dropped (keys are code constants: few)


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: drop sensitive keys and mask credential-shaped strings everywhere."""
    for key, value in event_dict.items():  # values are replaced in place: the dict never changes size
        sensitive = _sensitive_key.get(key)
        if sensitive is None:
            sensitive = key.lower() in _SENSITIVE_KEYS
            if len(_sensitive_key) < 4096:
                _sensitive_key[key] = sensitive
        if sensitive:
            event_dict[key] = "[REDACTED]"
        elif isinstance(value, str):
            if _may_hold_secret(value):
                event_dict[key] = _SECRETS.sub("[REDACTED]", value)
        elif isinstance(value, BaseException):
            event_dict[key] = _scrub(f"{type(value).__name__}: {value}")
    return event_dict


_JSON = msgspec.json.Encoder(enc_hook=str)  # anything msgspec cannot encode natively is logged as its str()


def render_json(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """structlog renderer: one JSON object per line (msgspec: a fraction of json.dumps' cost)."""
    return _JSON.encode(event_dict).decode()


class RateLimitFilter(logging.Filter):
    """Lets through at most one record per `interval` seconds of each kind (logger and message template).

    Third-party servers log per connection ("Invalid HTTP request received."): a flood of garbage must not
    become a flood of lines. The next record of a kind that passes carries `suppressed`, how many were dropped.
    """

    MAX_KINDS = 1024  # templates are code constants, but a library may log preformatted text: stay bounded

    def __init__(self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._dropped: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """True for the first record of its kind in an interval; it is told how many were dropped before it."""
        kind = (record.name, str(record.msg))
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self._dropped[kind] = self._dropped.get(kind, 0) + 1
            return False
        if last is None and len(self._last) >= self.MAX_KINDS:
            self._last.clear()
            self._dropped.clear()
        self._last[kind] = now
        dropped = self._dropped.pop(kind, 0)
        if dropped:
            record.suppressed = dropped
        return True

    def take_unreported(self) -> dict[str, int]:
        """Records dropped that no later record of their kind has reported yet, by kind; forgets them."""
        unreported = {_scrub(f"{name}: {msg}")[:200]: n for (name, msg), n in self._dropped.items()}
        self._dropped.clear()
        return unreported


def report_suppressed() -> None:
    """Log the stdlib records the rate limit dropped since the last line of their kind (a server calls this
    when it stops, so the tail of a flood is counted too)."""
    unreported: dict[str, int] = {}
    for handler in logging.getLogger().handlers:
        for rate_limit in handler.filters if isinstance(handler, _StderrHandler) else ():
            if isinstance(rate_limit, RateLimitFilter):
                unreported.update(rate_limit.take_unreported())
    if unreported:
        structlog.get_logger("livetoken").warning("log_lines_suppressed", lines=unreported)


def _add_suppressed(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    suppressed = getattr(event_dict.get("_record"), "suppressed", None)
    if suppressed:
        event_dict["suppressed"] = suppressed
    return event_dict


class _Stderr:
    """structlog's output: each rendered line written to whatever sys.stderr is at that moment (tests and servers
    swap it), flushed at once. One shared instance; every level writes the same way."""

    __slots__ = ()

    def msg(self, message: str) -> None:
        """Write one line."""
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


_STDERR = _Stderr()
_generation = 0  # bumped by configure_logging: loggers built under an older configuration are rebuilt


class CachedLogger:
    """A module's logger: the bound logger is built once per configuration, not on every call.

    structlog's lazy proxy assembles a new bound logger (context, output, wrapper) on each call unless it caches
    forever, which would pin a level chosen before configure_logging ran. This one rebuilds when
    configure_logging runs again; `structlog.testing.capture_logs` still works (it edits the processor list the
    bound logger shares).
    """

    __slots__ = ("_bound", "_built_for", "_processors")

    def __init__(self) -> None:
        self._built_for = -1
        self._bound: Any = None
        self._processors: Any = None

    def __getattr__(self, name: str) -> Any:
        # structlog.reset_defaults() (tests) replaces the processor list without configure_logging: seen here too.
        processors = structlog.get_config()["processors"]
        if self._built_for != _generation or self._processors is not processors:
            self._bound = structlog.get_logger().bind()
            self._built_for, self._processors = _generation, processors
        return getattr(self._bound, name)


def get_logger(_name: str) -> Any:
    """The logger a module keeps at import time (`_name` documents who logs; lines do not carry it)."""
    return CachedLogger()


class _StderrHandler(logging.Handler):
    """Writes each formatted record as one line to whatever sys.stderr is when it is emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except Exception:  # logging must never raise into the code that logs (stdlib convention)
            self.handleError(record)


def configure_logging(fmt: Literal["json", "console"] | None, level: str = "info") -> None:
    """Configure structlog, and stdlib logging through the same processors, once per process."""
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    shared: list[Any] = [
        merge_request_context,
        add_trace_ids,
        structlog.processors.add_log_level,
        _Timestamp(),
        # Tracebacks become text before redaction, in both formats: an exception's message (or, on a console,
        # its frames' locals) may hold a credential.
        structlog.processors.format_exc_info,
    ]
    renderer: Any
    if fmt == "json":
        renderer = render_json
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    level_no = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, redact_secrets, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=lambda *_args: _STDERR,
        cache_logger_on_first_use=False,  # CachedLogger caches, per configuration
    )
    global _generation  # noqa: PLW0603 - process-wide, like the structlog configuration it tracks
    _generation += 1
    # Third-party libraries log through stdlib: the same line shape and redaction as ours, rate-limited per kind,
    # warnings and up only.
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, _add_suppressed, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact_secrets, renderer],
        )
    )
    handler.addFilter(RateLimitFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(level_no, logging.WARNING))
    # uvicorn.error at WARNING explicitly: uvicorn skips its per-connection TRACE formatting when its level is set.
    for noisy in ("httpx", "httpcore", "google_genai", "websockets", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
