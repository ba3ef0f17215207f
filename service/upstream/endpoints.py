"""Google's Live API addresses: where tokens are minted and where a client opens its session with one."""

from __future__ import annotations

from dataclasses import dataclass

GOOGLE_BASE_URL = "https://generativelanguage.googleapis.com"
API_VERSION = "v1alpha"  # ephemeral tokens are documented for v1alpha only


@dataclass(frozen=True, slots=True)
class LiveEndpoint:
    """The base URL the SDKs take (`httpOptions.baseUrl`) and the WebSocket URL a token opens a session on."""

    base_url: str
    websocket_url: str


def live_endpoint(base_url: str | None) -> LiveEndpoint:
    """The Live endpoint at `base_url` (None = Google's); the emulator differs only in its host."""
    base = (base_url or GOOGLE_BASE_URL).rstrip("/")
    host = base.split("://", 1)[1]
    return LiveEndpoint(
        base_url=base,
        websocket_url=(
            f"wss://{host}/ws/google.ai.generativelanguage.{API_VERSION}.GenerativeService.BidiGenerateContentConstrained"
        ),
    )
