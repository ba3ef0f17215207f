"""The client's audio conversion and built-in tools, on real WAV files and real expressions."""

from __future__ import annotations

import itertools
import math
import struct
import wave
from array import array
from pathlib import Path

import pytest

from service.client.audio import AudioFormatError, chunks, read_wav_pcm16, write_wav
from service.client.tools import calculate, run_tool


def write_tone(path: Path, rate: int, channels: int, width: int, seconds: float = 1.0, freq: float = 440.0) -> None:
    """A sine tone WAV in the given format."""
    frames = bytearray()
    for i in range(int(rate * seconds)):
        value = math.sin(2 * math.pi * freq * i / rate) * 0.5
        if width == 1:
            sample = struct.pack("<B", int(128 + value * 127))
        elif width == 2:
            sample = struct.pack("<h", int(value * 32767))
        elif width == 3:
            sample = struct.pack("<i", int(value * 8388607))[:3]
        else:
            sample = struct.pack("<i", int(value * 2147483647))
        frames += sample * channels
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(frames))


def zero_crossings_hz(pcm: bytes, rate: int) -> float:
    """Estimate a tone's frequency from its zero crossings."""
    s = array("h")
    s.frombytes(pcm)
    crossings = sum(1 for a, b in itertools.pairwise(s) if (a < 0) != (b < 0))
    return crossings / 2 / (len(s) / rate)


@pytest.mark.parametrize(
    ("rate", "channels", "width"),
    [(16_000, 1, 2), (8_000, 2, 2), (44_100, 1, 3), (48_000, 2, 4), (22_050, 1, 1), (24_000, 2, 2)],
)
def test_any_wav_becomes_16khz_mono_pcm16(tmp_path: Path, rate: int, channels: int, width: int) -> None:
    """Rate, channels and sample width are converted; duration and pitch survive."""
    path = tmp_path / "in.wav"
    write_tone(path, rate, channels, width)
    pcm = read_wav_pcm16(path)
    assert abs(len(pcm) / 2 / 16_000 - 1.0) < 0.01
    assert abs(zero_crossings_hz(pcm, 16_000) - 440) < 10


def test_not_a_wav_is_a_clear_error(tmp_path: Path) -> None:
    """A non-WAV file gives AudioFormatError naming the file."""
    bad = tmp_path / "song.mp3"
    bad.write_bytes(b"ID3\x03\x00not a wav")
    with pytest.raises(AudioFormatError, match=r"song\.mp3"):
        read_wav_pcm16(bad)


def test_chunks_are_real_time_sized() -> None:
    """50 ms pieces of 16 kHz PCM16 are 1600 bytes; the tail is kept."""
    pieces = list(chunks(bytes(3300)))
    assert [len(p) for p in pieces] == [1600, 1600, 100]


def test_write_wav_is_24khz_mono(tmp_path: Path) -> None:
    """Replies are saved as 24 kHz mono PCM16."""
    path = tmp_path / "out.wav"
    write_wav(path, bytes(48_000))
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (24_000, 1, 2, 24_000)


@pytest.mark.parametrize(("expr", "result"), [("2*21", 42), ("(1+2)/4", 0.75), ("-3**2", -9), ("7 // 2 + 7 % 2", 4)])
def test_calculator_does_arithmetic(expr: str, result: float) -> None:
    """Plain arithmetic works."""
    assert calculate(expr) == {"result": result}


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os').system('id')",
        "open('/etc/passwd')",
        "2**99999",
        "x + 1",
        "[1, 2]",
        "1/0",
        "a" * 300,
        "1 if 1 else 2",
    ],
)
def test_calculator_refuses_anything_else(expr: str) -> None:
    """Names, calls, huge powers, division by zero and long inputs become error responses, never execution."""
    assert "error" in run_tool("calculate", {"expression": expr})


def test_unknown_function_and_bad_arguments_are_error_responses() -> None:
    """The model asking for something the client lacks gets an error response, not a crash."""
    assert run_tool("launch_rockets", {}) == {"error": "unknown function 'launch_rockets'"}
    assert "error" in run_tool("calculate", {"nope": 1})
    assert "utc" in run_tool("get_current_time", {})
