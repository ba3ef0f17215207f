"""Helpers for driving the emulator's Live endpoint with the real google-genai SDK."""

from __future__ import annotations

import base64
import math
import ssl
import struct
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from google import genai
from google.genai import types

MODEL = "gemini-3.8-live"  # the default Live model (service/catalogue/live_models.toml)
PCM16K = "audio/pcm;rate=16000"
OPEN_CLIENTS: list[genai.Client] = []  # closed after each test by the autouse fixture in conftest.py


async def close_open_clients() -> None:
    """Close every SDK client opened through client() (their aiohttp sessions warn when left open)."""
    while OPEN_CLIENTS:
        await OPEN_CLIENTS.pop().aio.aclose()


def client(emu: Any, key: str, base_url: str | None = None) -> genai.Client:
    """An SDK client for `key` (API key or token) trusting only the emulator's CA, as a user would build it."""
    ctx = ssl.create_default_context(cafile=emu.ca_file)
    options = types.HttpOptions(
        base_url=base_url or emu.base_url,
        api_version="v1alpha",
        async_client_args={"ssl": ctx, "verify": ctx},
    )
    c = genai.Client(api_key=key, http_options=options)
    OPEN_CLIENTS.append(c)
    return c


def live_config(modality: str = "AUDIO", **extra: Any) -> types.LiveConnectConfig:
    """A locked setup like a profile's."""
    return types.LiveConnectConfig(
        response_modalities=[types.Modality(modality)],
        system_instruction="Locked instruction.",
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Kore"))
        )
        if modality == "AUDIO"
        else None,
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        session_resumption=types.SessionResumptionConfig(),
        **extra,
    )


async def mint(
    emu: Any, modality: str = "AUDIO", uses: int = 1, new_session: float = 60, expire: float = 600, **extra: Any
) -> str:
    """A token whose whole setup is locked."""
    now = datetime.now(UTC)
    token = await client(emu, emu.api_key).aio.auth_tokens.create(
        config=types.CreateAuthTokenConfig(
            uses=uses,
            expire_time=now + timedelta(seconds=expire),
            new_session_expire_time=now + timedelta(seconds=new_session),
            live_connect_constraints=types.LiveConnectConstraints(model=MODEL, config=live_config(modality, **extra)),
        )
    )
    assert token.name
    return str(token.name)


def tone(seconds: float, rate: int = 16_000, freq: float = 440.0, amplitude: int = 8000) -> bytes:
    """PCM16 mono sine."""
    return b"".join(
        struct.pack("<h", int(amplitude * math.sin(2 * math.pi * freq * i / rate))) for i in range(int(seconds * rate))
    )


def silence(seconds: float, rate: int = 16_000) -> bytes:
    """PCM16 mono silence."""
    return bytes(int(seconds * rate) * 2)


async def send_audio(session: Any, pcm: bytes, chunk: int = 3200) -> None:
    """Stream PCM16 in 100 ms chunks, as a microphone would (without waiting in between)."""
    for i in range(0, len(pcm), chunk):
        await session.send_realtime_input(audio=types.Blob(data=pcm[i : i + chunk], mime_type=PCM16K))


async def collect(session: Any) -> list[types.LiveServerMessage]:
    """Messages until turn_complete (receive() ends there)."""
    return [m async for m in session.receive()]


def model_text(messages: list[types.LiveServerMessage]) -> str:
    """What the model said, from its output transcription (today's Live models answer in audio only)."""
    return "".join(
        m.server_content.output_transcription.text or ""
        for m in messages
        if m.server_content and m.server_content.output_transcription
    )


def reply_audio(messages: list[types.LiveServerMessage]) -> bytes:
    """The inline audio of an AUDIO reply, joined."""
    return b"".join(
        p.inline_data.data or b""
        for m in messages
        if m.server_content and m.server_content.model_turn
        for p in m.server_content.model_turn.parts or []
        if p.inline_data
    )


def png(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (0, 0, 255)) -> bytes:
    """A real PNG image of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def jpeg() -> bytes:
    """A real baseline JPEG: one 8x8 mid-grey block (DC 0, every AC zero), hand-assembled."""
    soi, eoi = b"\xff\xd8", b"\xff\xd9"
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + b"\x01" * 64
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 8, 8, 1) + b"\x01\x11\x00"
    # One-symbol Huffman tables: DC category 0 and AC end-of-block, each coded as the single bit 0.
    dht_dc = b"\xff\xc4" + struct.pack(">H", 20) + b"\x00" + b"\x01" + b"\x00" * 15 + b"\x00"
    dht_ac = b"\xff\xc4" + struct.pack(">H", 20) + b"\x10" + b"\x01" + b"\x00" * 15 + b"\x00"
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00" + b"\x00\x3f\x00"
    scan = bytes([0b00111111])  # DC code 0, EOB code 0, padded with one-bits
    return soi + app0 + dqt + sof0 + dht_dc + dht_ac + sos + scan + eoi


def b64(data: bytes) -> str:
    """Standard base64 text, as the JS SDK sends blob data."""
    return base64.b64encode(data).decode()
