"""WAV in (any rate, mono/stereo, 8/16/24/32-bit PCM) to 16 kHz mono PCM16; PCM16 out to WAV. Pure Python."""

from __future__ import annotations

import struct
import wave
from array import array
from collections.abc import Iterator
from pathlib import Path

INPUT_RATE = 16_000
OUTPUT_RATE = 24_000


class AudioFormatError(Exception):
    """The input file is not a WAV this client can read."""


def _to_int16(frames: bytes, width: int) -> array[int]:
    if width == 2:
        out = array("h")
        out.frombytes(frames)
        return out
    if width == 1:  # unsigned 8-bit
        return array("h", ((b - 128) << 8 for b in frames))
    if width == 3:
        return array(
            "h",
            (
                struct.unpack_from("<i", frames[i : i + 3] + (b"\xff" if frames[i + 2] & 0x80 else b"\x00"))[0] >> 8
                for i in range(0, len(frames), 3)
            ),
        )
    if width == 4:
        wide = array("i")
        wide.frombytes(frames)
        return array("h", (s >> 16 for s in wide))
    raise AudioFormatError(f"unsupported sample width: {width * 8} bits")


def _mixdown(samples: array[int], channels: int) -> array[int]:
    if channels == 1:
        return samples
    return array("h", (sum(samples[i : i + channels]) // channels for i in range(0, len(samples), channels)))


def resample(samples: array[int], src_rate: int, dst_rate: int) -> array[int]:
    """Linear-interpolation resampling (adequate for speech into a 16 kHz model)."""
    if src_rate == dst_rate or not samples:
        return samples
    n_out = int(len(samples) * dst_rate / src_rate)
    step = src_rate / dst_rate
    last = len(samples) - 1
    out = array("h", bytes(2 * n_out))
    for i in range(n_out):
        pos = i * step
        j = int(pos)
        frac = pos - j
        a = samples[j]
        b = samples[j + 1] if j < last else a
        out[i] = int(a + (b - a) * frac)
    return out


def read_wav_pcm16(path: Path, rate: int = INPUT_RATE) -> bytes:
    """The file's audio as little-endian PCM16 mono at `rate`."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, src_rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(f"{path}: not a PCM WAV file ({exc})") from None
    except OSError as exc:
        raise AudioFormatError(f"{path}: {exc.strerror}") from None
    mono = _mixdown(_to_int16(frames, width), channels)
    return resample(mono, src_rate, rate).tobytes()


def chunks(pcm: bytes, rate: int = INPUT_RATE, seconds: float = 0.05) -> Iterator[bytes]:
    """Real-time-sized pieces (50 ms by default) of PCM16 mono."""
    size = int(rate * seconds) * 2
    for i in range(0, len(pcm), size):
        yield pcm[i : i + size]


def write_wav(path: Path, pcm: bytes, rate: int = OUTPUT_RATE) -> None:
    """Save PCM16 mono as a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)


def seconds_of(pcm_bytes: int, rate: int) -> float:
    """Duration of PCM16 mono bytes."""
    return pcm_bytes / 2 / rate
