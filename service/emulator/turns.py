"""What the caller has said and shown since the last turn: audio with end-of-speech detection, and video frames.

A spoken turn is one stretch of speech; it ends after END_OF_TURN_SILENCE seconds of silence or at
`audioStreamEnd`, whichever comes first. Silence alone is never a turn: once speech has ended, trailing silence and
a late `audioStreamEnd` open no second turn (they used to, and the empty turn cut the real reply short).
Frames count toward the next turn that starts, spoken or typed.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from service.emulator import model

END_OF_TURN_SILENCE = 0.6  # seconds of silence after speech that end a spoken turn


class ProtocolError(Exception):
    """A client frame the real API refuses: the session closes with `code` and `reason`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Media:
    """One decoded blob of a realtimeInput: PCM16 audio or one video frame."""

    kind: str  # "audio" | "frame"
    data: bytes


def decode_b64(data: str) -> bytes:
    """Google accepts standard and URL-safe base64, padded or not (the Python SDK sends URL-safe)."""
    data = data.replace("-", "+").replace("_", "/")
    return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)


def _kind(key: str, mime: str) -> str:
    if key == "audio" or (key != "video" and (mime.startswith("audio/") or not mime)):
        return "audio"  # `audio` is PCM whatever it says; a chunk without a type is taken as the usual PCM
    if mime.startswith("image/"):
        return "frame"
    raise ProtocolError(1007, f"Unsupported mime type in realtimeInput.{key}: {mime[:40]}")


def media_of(realtime: dict[str, Any]) -> list[Media]:
    """The blobs of a realtimeInput in order: `audio`, `video`, and the older `mediaChunks` (audio or image)."""
    found: list[tuple[str, Any]] = [(key, realtime.get(key)) for key in ("audio", "media", "video")]
    chunks = realtime.get("mediaChunks") or realtime.get("media_chunks") or []
    found += [("mediaChunks", chunk) for chunk in (chunks if isinstance(chunks, list) else [])]
    media = []
    for key, blob in found:
        if not isinstance(blob, dict) or not blob.get("data"):
            continue
        mime = str(blob.get("mimeType") or blob.get("mime_type") or "")
        kind = _kind(key, mime)
        try:
            media.append(Media(kind, decode_b64(str(blob["data"]))))
        except (binascii.Error, ValueError):
            raise ProtocolError(1007, f"Invalid base64 data in realtimeInput.{key}") from None
    return media


@dataclass(frozen=True)
class AudioTurn:
    """A finished spoken turn: how much audio it held (leading silence included) and the frames seen with it."""

    seconds: float
    frames: int


class TurnInput:
    """Pending input of the next turn."""

    def __init__(self) -> None:
        self.audio = bytearray()
        self.heard_speech = False
        self.silence = 0.0
        self.frames = 0

    def add_frame(self) -> None:
        """One video frame for the next turn."""
        self.frames += 1

    def take_frames(self) -> int:
        """The frames seen since the last turn started (for a typed turn)."""
        frames, self.frames = self.frames, 0
        return frames

    def add_audio(self, pcm: bytes) -> tuple[bool, AudioTurn | None]:
        """(is this chunk speech, the spoken turn it ends if any)."""
        loud = model.rms(pcm) >= model.SILENCE_RMS
        self.audio += pcm
        if loud:
            self.heard_speech, self.silence = True, 0.0
        elif self.heard_speech:
            self.silence += len(pcm) / 2 / model.INPUT_RATE
            if self.silence >= END_OF_TURN_SILENCE:
                return False, self._take_turn()
        return loud, None

    def end_of_stream(self) -> AudioTurn | None:
        """audioStreamEnd: pending speech is a turn now; pending silence is dropped."""
        if self.heard_speech:
            return self._take_turn()
        self.audio.clear()
        self.silence = 0.0
        return None

    def _take_turn(self) -> AudioTurn:
        turn = AudioTurn(len(self.audio) / 2 / model.INPUT_RATE, self.take_frames())
        self.audio.clear()
        self.heard_speech, self.silence = False, 0.0
        return turn
