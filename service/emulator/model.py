"""A deterministic stand-in for the model: the same input always gets the same answer.

Rules (documented for tests and frontend teams):
- A text turn is answered "You said: <text>". An audio turn is transcribed as "(N.N seconds of audio)" and
  answered "I heard N.N seconds of audio."
- Video frames (`realtimeInput.video`, or image `mediaChunks`) received since the previous turn began are counted
  into the next answer: "I saw 3 frames. You said: <text>" and "I saw 1 frame and heard N.N seconds of audio.";
  each frame adds 258 IMAGE prompt tokens to usageMetadata (Gemini's count for a small image).
- If the session declares functions and the turn mentions one by name (for audio: always the first declared
  function), the model calls it (`toolCall`). A blocking call (declared `BLOCKING`, or the model's default,
  `livetoken models`) waits for the `tool_response`, then the turn's answer is "<name> returned <response JSON>.".
  A non-blocking call does not wait: the turn goes on with "Checking <name>." and the result is spoken as a turn of
  its own, "<name> returned <response JSON>.", when the response's `scheduling` says: WHEN_IDLE (the default)
  after the reply in progress, INTERRUPT at once (the reply in progress is interrupted), SILENT never.
- AUDIO replies are 24 kHz PCM16 mono: a soft tone whose pitch depends on the voice, lasting 60 ms per
  character of the reply text (between 0.5 s and 4 s).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from array import array
from typing import Any

OUTPUT_RATE = 24_000
INPUT_RATE = 16_000
SILENCE_RMS = 500.0  # PCM16 RMS under this is silence


def rms(pcm: bytes) -> float:
    """Root mean square of little-endian PCM16 samples."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) // 2 * 2])
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))


TOKENS_PER_FRAME = 258


def reply_text(turn_text: str | None, audio_seconds: float, frames: int = 0) -> str:
    """The model's answer to a turn without tools."""
    saw = f"I saw {frames} frame{'' if frames == 1 else 's'}"
    if turn_text is not None:
        said = f"You said: {turn_text.strip()}"
        return f"{saw}. {said}" if frames else said
    heard = f"heard {audio_seconds:.1f} seconds of audio."
    return f"{saw} and {heard}" if frames else f"I {heard}"


def input_transcript(audio_seconds: float) -> str:
    """What the emulator 'hears' in an audio turn."""
    return f"({audio_seconds:.1f} seconds of audio)"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def pick(mapping: Any, key: str) -> Any:
    """`mapping[key]` under its camelCase name or its snake_case twin (the SDKs send both), else None."""
    if not isinstance(mapping, dict):
        return None
    found = mapping.get(key)
    return found if found is not None else mapping.get(_snake(key))


def declared_function_decls(setup: dict[str, Any]) -> list[dict[str, Any]]:
    """The function declarations of a (camelCase or snake_case) setup."""
    return [
        decl
        for tool in pick(setup, "tools") or []
        if isinstance(tool, dict)
        for decl in pick(tool, "functionDeclarations") or []
        if isinstance(decl, dict)
    ]


def declared_functions(setup: dict[str, Any]) -> list[str]:
    """Names of the functions declared in a (camelCase or snake_case) setup."""
    return [d["name"] for d in declared_function_decls(setup) if isinstance(d.get("name"), str)]


def interim_text(function: str) -> str:
    """What the model says while a non-blocking call runs."""
    return f"Checking {function}."


def result_text(function: str, result: dict[str, Any]) -> str:
    """How the model speaks a function's result."""
    return f"{function} returned {json.dumps(result, sort_keys=True)}."


def pick_function(setup: dict[str, Any], turn_text: str | None) -> str | None:
    """Which declared function this turn calls, if any."""
    names = declared_functions(setup)
    if not names:
        return None
    if turn_text is None:
        return names[0]
    lowered = turn_text.lower()
    for name in names:
        if name.lower() in lowered or name.replace("_", " ").lower() in lowered:
            return name
    return None


def function_args(name: str, turn_text: str | None) -> dict[str, Any]:
    """Deterministic arguments for a call: text after the function's name, if any."""
    if turn_text and name in turn_text:
        rest = turn_text.split(name, 1)[1].strip(" :")
        if rest:
            return {"input": rest} if name != "calculate" else {"expression": rest}
    return {}


def voice_of(setup: dict[str, Any]) -> str:
    """The prebuilt voice in the setup (inner keys arrive snake_case or camelCase), default Puck."""
    gen = setup.get("generationConfig") or setup.get("generation_config") or {}
    speech = gen.get("speechConfig") or gen.get("speech_config") or {}
    voice = speech.get("voiceConfig") or speech.get("voice_config") or {}
    prebuilt = voice.get("prebuiltVoiceConfig") or voice.get("prebuilt_voice_config") or {}
    name = prebuilt.get("voiceName") or prebuilt.get("voice_name")
    return name if isinstance(name, str) else "Puck"


def modality(setup: dict[str, Any]) -> str:
    """AUDIO or TEXT (Google's default is AUDIO)."""
    gen = setup.get("generationConfig") or setup.get("generation_config") or {}
    mods = gen.get("responseModalities") or gen.get("response_modalities") or ["AUDIO"]
    return "TEXT" if mods == ["TEXT"] else "AUDIO"


def synthesize(text: str, voice: str) -> bytes:
    """24 kHz PCM16 'speech' for `text`: a tone with a gentle envelope, pitched by voice."""
    seconds = min(4.0, max(0.5, 0.06 * len(text)))
    n = int(seconds * OUTPUT_RATE)
    freq = 180.0 + (zlib.crc32(voice.encode()) % 200)
    out = bytearray()
    for i in range(n):
        envelope = min(1.0, i / 1200, (n - i) / 1200)
        out += struct.pack("<h", int(8000 * envelope * math.sin(2 * math.pi * freq * i / OUTPUT_RATE)))
    return bytes(out)


def usage(
    prompt_tokens: int, response_tokens: int, response_modality: str, prompt_modality: str, frames: int = 0
) -> dict[str, Any]:
    """usageMetadata in the shape Google sends."""
    details = [{"modality": prompt_modality, "tokenCount": prompt_tokens}]
    if frames:
        details.append({"modality": "IMAGE", "tokenCount": frames * TOKENS_PER_FRAME})
    prompt_total = prompt_tokens + frames * TOKENS_PER_FRAME
    return {
        "promptTokenCount": prompt_total,
        "responseTokenCount": response_tokens,
        "totalTokenCount": prompt_total + response_tokens,
        "promptTokensDetails": details,
        "responseTokensDetails": [{"modality": response_modality, "tokenCount": response_tokens}],
    }
