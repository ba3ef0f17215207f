"""The checked-in openapi.yaml is the contract: it equals what the CLI prints and what the app serves."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.processes import livetoken_exe
from tests.support.service import build_settings, running_app, service_env, write_config

ROOT = Path(__file__).resolve().parent.parent
CHECKED_IN = (ROOT / "openapi.yaml").read_text()


def test_checked_in_openapi_equals_cli_output() -> None:
    """`livetoken openapi` prints exactly openapi.yaml (regenerate with `make openapi` after API changes)."""
    out = subprocess.run([livetoken_exe(), "openapi"], capture_output=True, text=True, check=True).stdout
    assert out == CHECKED_IN


async def test_served_openapi_equals_checked_in(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """The running app serves the same document at /docs/openapi.yaml, and interactive docs at /docs."""
    settings = build_settings(write_config(tmp_path), service_env(emulator, redis_url))
    async with running_app(settings) as client:
        served = await client.get("/docs/openapi.yaml")
        docs = await client.get("/docs")
    assert yaml.safe_load(served.text) == yaml.safe_load(CHECKED_IN)
    assert docs.status_code == 200
    assert "<html" in docs.text.lower()


def test_contract_documents_every_route_status_and_header() -> None:
    """Every route, the problem statuses, and the RateLimit/Retry-After/Idempotency/WWW-Authenticate headers."""
    doc = yaml.safe_load(CHECKED_IN)
    assert set(doc["paths"]) == {
        "/v1/tokens",
        "/v1/profiles",
        "/v1/usage",
        "/v1/admin/blocks",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    post = doc["paths"]["/v1/tokens"]["post"]
    assert set(post["responses"]) == {
        "201",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "422",
        "429",
        "502",
        "503",
        "504",
    }
    assert {"RateLimit", "RateLimit-Policy", "Cache-Control"} <= set(post["responses"]["201"]["headers"])
    assert {"RateLimit", "Retry-After"} <= set(post["responses"]["429"]["headers"])
    assert "WWW-Authenticate" in post["responses"]["401"]["headers"]
    assert [p["name"] for p in post["parameters"]] == ["Idempotency-Key", "X-Firebase-AppCheck"]
    for status in ("400", "401", "429", "503"):
        assert "application/problem+json" in post["responses"][status]["content"]
