"""The JSON log pipeline: one parseable object per line, credentials masked wherever they sit."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from service.logging import configure_logging

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
