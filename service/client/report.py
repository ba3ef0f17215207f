"""What the client saw: progress on stderr, transcripts on stdout, and a --json summary."""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any


def fingerprint(secret: str) -> str:
    """A token's short, non-reversible name; the service's audit line uses the same one, so runs match log lines."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]


@dataclass
class Summary:
    """Machine-readable outcome of one client run."""

    token_fingerprint: str = ""
    profile: str = ""
    model: str = ""
    modality: str = ""
    presentation: str = "voice"
    audio_seconds_sent: float = 0.0
    frames_sent: int = 0
    audio_bytes_received: int = 0
    audio_seconds_received: float = 0.0
    text_received: str = ""
    input_transcript: str = ""
    output_transcript: str = ""
    time_to_first_byte_ms: float | None = None
    turn_complete: bool = False
    interrupted: int = 0
    resumptions: int = 0  # connections after the first: resumed sessions, and new ones on a fresh token
    fresh_tokens: int = 0  # tokens fetched after the first, because the previous one could not go on
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    second_connect_refused: bool | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


class Progress:
    """Human-readable progress on stderr (quiet with --json)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        """One progress line."""
        self.end_stream()
        if not self.quiet:
            print(f"[{time.monotonic() - self.started:6.2f}s] {message}", file=sys.stderr, flush=True)

    def transcript(self, who: str, text: str) -> None:
        """Transcripts go to stdout, one line each, as they arrive."""
        self.end_stream()
        if not self.quiet:
            print(f"{who}: {text}", flush=True)

    _streaming = False

    def stream(self, who: str, text: str) -> None:
        """Streamed model text goes to stdout piece by piece on one line."""
        if self.quiet:
            return
        if not self._streaming:
            print(f"{who}: ", end="", flush=True)
            self._streaming = True
        print(text, end="", flush=True)

    def end_stream(self) -> None:
        """Finish a streamed line."""
        if self._streaming and not self.quiet:
            print(flush=True)
        self._streaming = False
