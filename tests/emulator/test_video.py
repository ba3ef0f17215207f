"""Camera and screen frames through the real SDK: the emulator counts them into its answer and its usage."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import errors, types

from tests.emulator.live_support import (
    MODEL,
    PCM16K,
    client,
    collect,
    jpeg,
    mint,
    model_text,
    png,
    reply_audio,
    silence,
    tone,
)

SECONDS_PER_CHARACTER = 0.06  # the emulator's reply audio: 60 ms per character of the answer (model.py)


async def test_text_turns_count_the_frames_sent_since_the_last_turn(emulator: Any) -> None:
    """Three JPEG frames then a question: "I saw 3 frames. …"; the next turn, with no new frame, sees none."""
    token = await mint(emulator)
    async with client(emulator, token).aio.live.connect(model=MODEL) as session:
        for _ in range(3):
            await session.send_realtime_input(video=types.Blob(data=jpeg(), mime_type="image/jpeg"))
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="what is this?")]))
        first = await collect(session)
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="and now?")]))
        second = await collect(session)
    assert model_text(first) == "I saw 3 frames. You said: what is this?"
    assert model_text(second) == "You said: and now?"
    usage = first[-1].usage_metadata
    assert usage is not None
    assert [(d.modality, d.token_count) for d in usage.prompt_tokens_details or []] == [
        (types.MediaModality.TEXT, 3),
        (types.MediaModality.IMAGE, 3 * 258),
    ]
    assert usage.prompt_token_count == 3 + 3 * 258
    info = emulator.sessions()[-1]
    assert (info["video"], info["frames"], info["session_limit_seconds"]) == (True, 3, 120)


async def test_audio_turn_counts_frames_sent_as_media_chunks(emulator: Any) -> None:
    """The older `media` route (mediaChunks) carries PNG frames and PCM alike; the spoken answer counts both."""
    token = await mint(emulator)
    async with client(emulator, token).aio.live.connect(model=MODEL) as session:
        await session.send_realtime_input(media=types.Blob(data=png(), mime_type="image/png"))
        await session.send_realtime_input(media=types.Blob(data=tone(1.0), mime_type=PCM16K))
        await session.send_realtime_input(media=types.Blob(data=png(), mime_type="image/png"))
        await session.send_realtime_input(audio_stream_end=True)
        messages = await collect(session)
    contents = [m.server_content for m in messages if m.server_content]
    heard = [c.input_transcription.text for c in contents if c.input_transcription]
    said = [c.output_transcription.text for c in contents if c.output_transcription]
    answer = "I saw 2 frames and heard 1.0 seconds of audio."
    assert heard == ["(1.0 seconds of audio)"]
    assert said == [answer]
    assert len(reply_audio(messages)) == int(SECONDS_PER_CHARACTER * len(answer) * 24_000) * 2
    assert contents[-1].turn_complete


async def test_sessions_without_frames_answer_as_before(emulator: Any) -> None:
    """No frame, no mention of frames: the spoken answer and its usage are exactly the audio-only ones."""
    token = await mint(emulator)
    async with client(emulator, token).aio.live.connect(model=MODEL) as session:
        await session.send_realtime_input(audio=types.Blob(data=tone(0.5) + silence(0.1), mime_type=PCM16K))
        await session.send_realtime_input(audio_stream_end=True)
        messages = await collect(session)
    said = [
        m.server_content.output_transcription.text
        for m in messages
        if m.server_content and m.server_content.output_transcription
    ]
    assert said == ["I heard 0.6 seconds of audio."]
    usage = messages[-1].usage_metadata
    assert usage is not None
    assert [(d.modality, d.token_count) for d in usage.prompt_tokens_details or []] == [(types.MediaModality.AUDIO, 15)]
    assert emulator.sessions()[-1]["video"] is False


@pytest.mark.parametrize("mime", ["video/mp4", "text/plain"])
async def test_a_chunk_that_is_neither_audio_nor_image_closes_1007(emulator: Any, mime: str) -> None:
    """An unsupported mediaChunks type ends the session with 1007 (invalid argument) naming the type."""
    token = await mint(emulator)
    async with client(emulator, token).aio.live.connect(model=MODEL) as session:
        await session.send_realtime_input(media=types.Blob(data=b"not media", mime_type=mime))
        with pytest.raises(errors.APIError) as err:
            await collect(session)
    assert err.value.code == 1007
    assert f"Unsupported mime type in realtimeInput.mediaChunks: {mime}" in str(err.value)
