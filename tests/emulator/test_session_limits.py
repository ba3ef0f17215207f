"""Google's session limits through the real SDK: 2 minutes once a session carries video, 15 audio-only.

The emulator here is started with limits of a few seconds (`--video-session-seconds 2 --audio-session-seconds 4
--goaway-lead 1`) so that the behaviour is seen in real time: goAway with timeLeft, then a 1008 close at the limit.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, types

from tests.emulator.live_support import MODEL, client, collect, jpeg, mint, model_text
from tests.support.emulator import EmulatorProcess

VIDEO_LIMIT, AUDIO_LIMIT = 2.0, 4.0
VIDEO_REASON = "Session limit reached: audio+video sessions last 2s without context window compression"
AUDIO_REASON = "Session limit reached: audio-only sessions last 4s without context window compression"


@pytest.fixture(scope="module")
def limited_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """An emulator whose session limits are seconds, not minutes."""
    proc = EmulatorProcess(
        tmp_path_factory.mktemp("limits"),
        "--speed",
        "0",
        "--video-session-seconds",
        str(VIDEO_LIMIT),
        "--audio-session-seconds",
        str(AUDIO_LIMIT),
        "--goaway-lead",
        "1",
    )
    proc.start()
    yield proc
    proc.stop()


async def until_closed(session: Any) -> tuple[list[str], errors.APIError, str | None]:
    """Read until the server closes: (goAway timeLeft values, the close as APIError, the last resumption handle)."""
    go_aways: list[str] = []
    handle = None
    try:
        while True:
            async for message in session.receive():
                if message.go_away:
                    go_aways.append(message.go_away.time_left or "")
                if message.session_resumption_update and message.session_resumption_update.new_handle:
                    handle = message.session_resumption_update.new_handle
    except errors.APIError as exc:
        return go_aways, exc, handle


async def until_quiet(session: Any, seconds: float) -> list[types.LiveServerMessage]:
    """Messages that arrive until none has come for `seconds`."""
    received = []
    messages = session.receive()
    try:
        while True:
            received.append(await asyncio.wait_for(anext(messages), seconds))
    except TimeoutError:
        return received


async def test_video_session_ends_at_the_video_limit_and_cannot_be_resumed(limited_emulator: EmulatorProcess) -> None:
    """One frame makes it a video session: goAway "1s", close 1008 at 2 s; its handle cannot resume it."""
    emu = limited_emulator
    token = await mint(emu)
    started = time.monotonic()
    async with client(emu, token).aio.live.connect(model=MODEL) as session:
        await session.send_realtime_input(video=types.Blob(data=jpeg(), mime_type="image/jpeg"))
        go_aways, closed, handle = await until_closed(session)
    lasted = time.monotonic() - started
    assert go_aways == ["1s"]
    assert closed.code == 1008
    assert VIDEO_REASON in str(closed)
    assert VIDEO_LIMIT - 0.5 <= lasted < AUDIO_LIMIT
    assert handle is not None
    resume = types.LiveConnectConfig(session_resumption=types.SessionResumptionConfig(handle=handle))
    with pytest.raises(errors.APIError) as refused:
        async with client(emu, token).aio.live.connect(model=MODEL, config=resume) as session:
            await collect(session)
    assert refused.value.code == 1008
    assert VIDEO_REASON in str(refused.value)


async def test_audio_only_session_ends_at_the_longer_limit(limited_emulator: EmulatorProcess) -> None:
    """Without a frame the session gets the audio-only limit: goAway "1s", then close 1008 at 4 s."""
    emu = limited_emulator
    token = await mint(emu)
    started = time.monotonic()
    async with client(emu, token).aio.live.connect(model=MODEL) as session:
        go_aways, closed, _ = await until_closed(session)
    lasted = time.monotonic() - started
    assert go_aways == ["1s"]
    assert closed.code == 1008
    assert AUDIO_REASON in str(closed)
    assert AUDIO_LIMIT - 0.5 <= lasted < AUDIO_LIMIT + 3


async def test_context_window_compression_lifts_the_limit(limited_emulator: EmulatorProcess) -> None:
    """With contextWindowCompression a video session outlives the video limit and still answers afterwards."""
    emu = limited_emulator
    compression = types.ContextWindowCompressionConfig(sliding_window=types.SlidingWindow())
    token = await mint(emu, context_window_compression=compression)
    async with client(emu, token).aio.live.connect(model=MODEL) as session:
        await session.send_realtime_input(video=types.Blob(data=jpeg(), mime_type="image/jpeg"))
        # Quiet for longer than the video limit: no goAway, no close.
        seen = await until_quiet(session, VIDEO_LIMIT + 1.5)
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="still there?")]))
        answer = model_text(await collect(session))
    assert [m.go_away for m in seen if m.go_away] == []
    assert answer == "I saw 1 frame. You said: still there?"
    assert emu.sessions()[-1]["session_limit_seconds"] is None


@pytest.mark.parametrize("flag", ["--video-session-seconds", "--audio-session-seconds"])
def test_a_limit_must_be_positive(tmp_path: Path, flag: str) -> None:
    """A zero limit is refused at start-up with one line naming the flag (exit 2)."""
    res = subprocess.run(
        [sys.executable, "-m", "service.emulator", "--port", "0", "--state-dir", str(tmp_path), flag, "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2
    assert res.stderr == f"livetoken emulator: {flag} must be a positive number\n"
