"""The JSON log pipeline: one parseable object per line, credentials masked wherever they sit."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from service.logging import RateLimitFilter, configure_logging, get_logger
from tests.support.processes import serving
from tests.support.service import service_env, write_config

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"
MINTED = "auth_tokens/abcDEF123-_.~xyz"
API_KEY = "AIzaSyD-0123456789abcdefghijklmnopq"


def test_credentials_are_masked_in_every_field_and_the_rest_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever field a credential lands in (message, nested text, exception, a sensitive key), the line
    written holds none of them; ordinary values, including non-JSON types, come through readable."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging("json", "info")
    log = structlog.get_logger("t")
    log.info(
        f"saw {MINTED}",
        detail=f"header was Bearer {JWT} and key {API_KEY}",
        authorization="anything at all",
        error=ValueError(f"upstream said {MINTED}"),
        when=datetime(2026, 11, 25, tzinfo=UTC),
        where=Path("/srv/livetoken"),
        subject="alice",
    )
    line = out.getvalue().strip()
    for secret in (JWT, MINTED, API_KEY, "anything at all"):
        assert secret not in line
    record = json.loads(line)
    assert record["event"] == "saw [REDACTED]"
    assert record["authorization"] == "[REDACTED]"
    assert record["error"] == "ValueError: upstream said [REDACTED]"
    assert record["subject"] == "alice"
    assert record["where"] == "/srv/livetoken"
    assert record["when"].startswith("2026-11-25")
    assert record["level"] == "info"


@pytest.fixture(autouse=True)
def _stdlib_logging_restored() -> Iterator[None]:
    """configure_logging installs a root handler; each test here leaves the process's logging as it found it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_stdlib_records_are_json_lines_with_the_same_masking(monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party library's warning (uvicorn's, say) is one JSON object like ours, with its logger name and
    credentials masked; an exception's traceback stays inside that one line's `exception` field."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging("json", "info")
    lib = logging.getLogger("uvicorn.error")
    lib.warning("peer sent %s and %s", f"Bearer {JWT}", API_KEY)
    try:
        raise ValueError(f"boom {MINTED}")
    except ValueError:
        lib.exception("Exception in ASGI application")
    logging.getLogger("some.library").info("below the stdlib threshold")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    for secret in (JWT, MINTED, API_KEY):
        assert secret not in out.getvalue()
    first, second = map(json.loads, lines)
    assert first["event"] == "peer sent [REDACTED] and [REDACTED]"
    assert (first["logger"], first["level"]) == ("uvicorn.error", "warning")
    assert first["timestamp"].endswith("Z")
    assert second["level"] == "error"
    assert "ValueError: boom [REDACTED]" in second["exception"]


def test_console_lines_mask_credentials_in_tracebacks_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a console as in JSON, an exception's message is masked, from our loggers and from stdlib ones alike,
    and no frame locals are printed."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging("console", "info")
    api_key = API_KEY
    try:
        raise ValueError(f"upstream refused {api_key}")
    except ValueError:
        structlog.get_logger("t").exception("mint_failed")
        logging.getLogger("some.library").exception("request failed")
    text = out.getvalue()
    assert API_KEY not in text
    assert text.count("ValueError: upstream refused [REDACTED]") == 2
    assert "mint_failed" in text
    assert "request failed" in text


def test_a_burst_of_one_kind_of_stdlib_line_is_written_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """50 identical per-connection warnings in a burst become one line; another kind still gets its own line,
    and a line that reports suppressed records shows the count."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging("json", "info")
    lib = logging.getLogger("uvicorn.error")
    for _ in range(50):
        lib.warning("Invalid HTTP request received.")
    lib.warning("Unsupported upgrade request.")
    logging.getLogger("other").warning("carries a count", extra={"suppressed": 7})
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["event"] for r in records] == [
        "Invalid HTTP request received.",
        "Unsupported upgrade request.",
        "carries a count",
    ]
    assert records[2]["suppressed"] == 7


def test_rate_limit_lets_one_record_of_a_kind_through_per_interval_and_counts_the_rest() -> None:
    """Within an interval only the first record of a kind (logger + template) passes; the first one after it
    carries how many were dropped; kinds are independent."""
    now = [100.0]
    limiter = RateLimitFilter(interval=1.0, clock=lambda: now[0])

    def record(name: str, msg: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, None, None)

    assert limiter.filter(record("uvicorn.error", "Invalid HTTP request received."))
    dropped = [limiter.filter(record("uvicorn.error", "Invalid HTTP request received.")) for _ in range(49)]
    assert not any(dropped)
    assert limiter.filter(record("uvicorn.error", "Unsupported upgrade request."))
    assert limiter.filter(record("other", "Invalid HTTP request received."))
    now[0] += 1.0
    after = record("uvicorn.error", "Invalid HTTP request received.")
    assert limiter.filter(after)
    assert getattr(after, "suppressed", None) == 49
    quiet = record("uvicorn.error", "Unsupported upgrade request.")
    assert limiter.filter(quiet)
    assert not hasattr(quiet, "suppressed")


GARBAGE = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 Bearer " + JWT.encode() + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nAuthorization: Bearer " + JWT.encode() + b"\r\nX-Key: " + API_KEY.encode() + b"\x00\r\n\r\n",
    b"BREW /" + API_KEY.encode() + b" HTCPCP/1.0\r\n\r\n",
    b"GET /?key=" + API_KEY.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, close\r\nUpgrade: h2c\r\n"
    b"Authorization: Bearer " + JWT.encode() + b"\r\n\r\n",
]


def _send_and_drain(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
        return answer


def test_garbage_on_50_connections_logs_a_few_json_lines_without_tracebacks_or_secrets(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """A real `livetoken serve` with JSON logs, sent malformed HTTP (TLS bytes, NUL in a header, an unknown
    method, an unsupported upgrade) carrying credentials on 50 connections: every line it writes is one JSON
    object, far fewer than 50 are about the garbage, none holds a traceback or any of the credentials."""
    with serving(write_config(tmp_path), service_env(emulator, redis_url, LIVETOKEN_LOG_FORMAT="json")) as (
        proc,
        url,
    ):
        port = int(url.rsplit(":", 1)[1])
        answers = [_send_and_drain(port, GARBAGE[i % len(GARBAGE)]) for i in range(50)]
        assert all(a.startswith(b"HTTP/1.1 4") for a in answers), {a[:40] for a in answers}
    # Stopped: the reader has everything (uvicorn logs a bad request before it answers 400).
    lines = [line for line in proc.text.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    noise = [r for r in records if r.get("logger", "").startswith("uvicorn")]
    assert 1 <= len(noise) <= 10, noise
    # Nothing is lost from the count: lines written, drops they report, and the drops reported at shutdown.
    tail = [r["lines"] for r in records if r["event"] == "log_lines_suppressed"]
    assert len(noise) + sum(r.get("suppressed", 0) for r in noise) + sum(sum(t.values()) for t in tail) == 50
    for secret in (JWT, API_KEY, "Traceback"):
        assert secret not in proc.text


def test_a_modules_logger_follows_a_new_configuration_and_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loggers are built once per configuration: the same module logger drops debug lines at info, writes them
    after configure_logging switches to debug, and writes to whatever sys.stderr is at the time."""
    log = get_logger("t")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("json", "info")
    log.debug("hidden")
    log.info("shown", n=1)
    configure_logging("json", "debug")
    log.debug("now_shown")
    monkeypatch.setattr(sys, "stderr", second)
    log.info("elsewhere")
    assert [json.loads(line)["event"] for line in first.getvalue().splitlines()] == ["shown", "now_shown"]
    assert [json.loads(line)["event"] for line in second.getvalue().splitlines()] == ["elsewhere"]
