"""Microphone and speaker through the optional `sounddevice` package (`pip install 'livetoken[audio]'`)."""

from __future__ import annotations

from typing import Any

from service.client.audio import INPUT_RATE, OUTPUT_RATE


class DeviceUnavailableError(Exception):
    """No audio device library (or no device)."""


def _sounddevice() -> Any:
    try:
        import sounddevice
    except (ImportError, OSError):
        raise DeviceUnavailableError(
            "audio devices need the optional extra: pip install 'livetoken[audio]' (and PortAudio)"
        ) from None
    return sounddevice


def record(seconds: float) -> bytes:
    """Capture `seconds` of 16 kHz mono PCM16 from the default microphone."""
    sd = _sounddevice()
    frames = sd.rec(int(seconds * INPUT_RATE), samplerate=INPUT_RATE, channels=1, dtype="int16")
    sd.wait()
    return bytes(frames.tobytes())


class Speaker:
    """Plays 24 kHz PCM16 as it arrives; `stop()` cuts off what has not been played (interruption)."""

    def __init__(self) -> None:
        sd = _sounddevice()
        self._stream = sd.RawOutputStream(samplerate=OUTPUT_RATE, channels=1, dtype="int16")
        self._stream.start()

    def play(self, pcm: bytes) -> None:
        """Queue audio for playback."""
        self._stream.write(pcm)

    def stop(self) -> None:
        """Drop queued audio and keep the device ready."""
        self._stream.abort()
        self._stream.start()

    def close(self) -> None:
        """Release the device."""
        self._stream.close()
