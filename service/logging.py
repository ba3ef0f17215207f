"""structlog set-up: JSON off a terminal, console on one; per-request context; redaction of secrets."""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from collections.abc import MutableMapping
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


def _scrub(value: str) -> str:
    return _SECRETS.sub("[REDACTED]", value)


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: drop sensitive keys and mask credential-shaped strings everywhere."""
    for key, value in list(event_dict.items()):
        if key.lower() in _SENSITIVE_KEYS:
            event_dict[key] = "[REDACTED]"
        elif isinstance(value, str):
            event_dict[key] = _scrub(value)
        elif isinstance(value, BaseException):
            event_dict[key] = _scrub(f"{type(value).__name__}: {value}")
    return event_dict


_JSON = msgspec.json.Encoder(enc_hook=str)  # anything msgspec cannot encode natively is logged as its str()


def render_json(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """structlog renderer: one JSON object per line (msgspec: a fraction of json.dumps' cost)."""
    return _JSON.encode(event_dict).decode()


def configure_logging(fmt: Literal["json", "console"] | None, level: str = "info") -> None:
    """Configure structlog (and stdlib logging through it) once per process."""
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if fmt == "json":
        shared.append(structlog.processors.format_exc_info)
        renderer = render_json
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    level_no = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, redact_secrets, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        # Looked up per logger, not bound once: tests and servers may swap sys.stderr.
        logger_factory=lambda *_args: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Third-party libraries log through stdlib; keep them quiet and on stderr.
    logging.basicConfig(level=max(level_no, logging.WARNING), stream=sys.stderr, format="%(name)s %(message)s")
    for noisy in ("httpx", "httpcore", "google_genai", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
