"""Where a spoken turn ends, through the real SDK against an emulator that paces its reply in real time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.genai import types

from tests.emulator.live_support import MODEL, client, collect, mint, reply_audio, send_audio, silence, tone
from tests.support.emulator import EmulatorProcess


@pytest.fixture(scope="module")
def realtime_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """An emulator that speaks its replies in real time, so input can arrive while it is still answering."""
    proc = EmulatorProcess(tmp_path_factory.mktemp("realtime"), "--speed", "1")
    proc.start()
    yield proc
    proc.stop()


def contents(messages: list[types.LiveServerMessage]) -> list[types.LiveServerContent]:
    """The serverContent of each message that has one."""
    return [m.server_content for m in messages if m.server_content]


async def test_trailing_silence_and_stream_end_do_not_open_a_second_turn(realtime_emulator: EmulatorProcess) -> None:
    """Tone, 0.8 s of silence, audioStreamEnd: one turn, answered in full, ending in one turnComplete.

    The silence ends the turn after 0.6 s; the last 0.2 s and the audioStreamEnd arrive while the reply is being
    spoken. They used to open a second turn for the trailing silence, which cut the first reply after a chunk
    with neither `interrupted` nor `turnComplete`.
    """
    emu = realtime_emulator
    token = await mint(emu)
    async with client(emu, token).aio.live.connect(model=MODEL) as session:
        await send_audio(session, tone(1.0) + silence(0.6))
        first = None
        async for message in session.receive():
            if message.server_content and message.server_content.model_turn:
                first = message  # the reply has started: now the rest of the silence, then the end of the stream
                break
        assert first is not None
        await send_audio(session, silence(0.2))
        await session.send_realtime_input(audio_stream_end=True)
        messages = [first, *await collect(session)]
        # Anything left over from the audio would arrive before the answer to this typed turn.
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="ok?")]))
        after = await collect(session)
    spoken = contents(messages)
    answer = "I heard 1.6 seconds of audio."
    assert [c.output_transcription.text for c in spoken if c.output_transcription] == [answer]
    assert sum(1 for c in spoken if c.turn_complete) == 1
    assert spoken[-1].turn_complete
    assert not any(c.interrupted for c in spoken)
    assert len(reply_audio(messages)) == int(0.06 * len(answer) * 24_000) * 2  # the whole reply: 1.74 s
    typed = contents(after)
    assert not any(c.input_transcription or c.interrupted for c in typed)
    assert [c.output_transcription.text for c in typed if c.output_transcription] == ["You said: ok?"]
    assert sum(1 for c in typed if c.turn_complete) == 1
