"""Live lifetimes cut short at run time through POST /_emulator/faults, and restored by DELETE.

One emulator serves every test (the session's, started with Google's lifetimes); a test that needs a connection or
a video session to end within seconds sets it for itself, as the browser tests do between scenarios.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from google.genai import types

from tests.emulator.live_support import MODEL, client, collect, jpeg, mint, model_text
from tests.emulator.test_session_limits import until_closed

DEFAULTS = {
    "max_connection_seconds": None,
    "goaway_lead_seconds": None,
    "audio_session_seconds": None,
    "video_session_seconds": None,
}


async def test_a_connection_lifetime_set_at_run_time_ends_connections_and_the_session_resumes(emulator: Any) -> None:
    """max_connection_seconds 1.5 with a 0.5 s lead: goAway "0.5s", close 1000 at 1.5 s; the newest handle then
    continues the session on a new connection, which gets the same lifetime."""
    emulator.set_faults(max_connection_seconds=1.5, goaway_lead_seconds=0.5)
    token = await mint(emulator)
    started = time.monotonic()
    async with client(emulator, token).aio.live.connect(model=MODEL) as session:
        go_aways, closed, handle = await until_closed(session)
    lasted = time.monotonic() - started
    assert go_aways == ["0.5s"]
    assert closed.code == 1000
    assert "Connection lifetime reached" in str(closed)
    assert 1.3 <= lasted < 3
    assert handle is not None
    resume = types.LiveConnectConfig(session_resumption=types.SessionResumptionConfig(handle=handle))
    async with client(emulator, token).aio.live.connect(model=MODEL, config=resume) as session:
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="still there?")]))
        assert model_text(await collect(session)) == "You said: still there?"
        go_aways, closed, _ = await until_closed(session)
    assert (go_aways, closed.code) == (["0.5s"], 1000)
    assert emulator.sessions()[-1]["resumed"] is True


async def test_a_video_session_limit_set_at_run_time_ends_the_session(emulator: Any) -> None:
    """video_session_seconds 1: a frame makes it a video session, closed 1008 at 1 s with the reason naming the
    limit; after DELETE /faults a video session gets the emulator's own limit (Google's 2 minutes) again."""
    emulator.set_faults(video_session_seconds=1, goaway_lead_seconds=0.5)
    token = await mint(emulator)
    async with client(emulator, token).aio.live.connect(model=MODEL) as session:
        await session.send_realtime_input(video=types.Blob(data=jpeg(), mime_type="image/jpeg"))
        go_aways, closed, _ = await until_closed(session)
    assert go_aways == ["0.5s"]
    assert closed.code == 1008
    assert "Session limit reached: audio+video sessions last 1s without context window compression" in str(closed)

    assert emulator.admin("DELETE", "/faults") == {
        "latency_ms": 0.0,
        "error_rates": {},
        "drop_rate": 0.0,
        "fail_next": [],
        **DEFAULTS,
    }
    token = await mint(emulator)
    async with client(emulator, token).aio.live.connect(model=MODEL) as session:
        await session.send_realtime_input(video=types.Blob(data=jpeg(), mime_type="image/jpeg"))
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="see?")]))
        assert model_text(await collect(session)) == "I saw 1 frame. You said: see?"
    assert emulator.sessions()[-1]["session_limit_seconds"] == 120


def test_lifetimes_survive_a_read_modify_write_of_the_other_faults(emulator: Any) -> None:
    """GET /faults shows the lifetimes set, and posting that document back with another fault keeps them."""
    emulator.set_faults(max_connection_seconds=3, goaway_lead_seconds=1)
    emulator.fail_next(503)
    assert emulator.admin("GET", "/faults") == {
        "latency_ms": 0.0,
        "error_rates": {},
        "drop_rate": 0.0,
        "fail_next": [503],
        **DEFAULTS,
        "max_connection_seconds": 3.0,
        "goaway_lead_seconds": 1.0,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"max_connection_seconds": 0},
        {"video_session_seconds": -1},
        {"audio_session_seconds": "soon"},
        {"max_connection_seconds": True},
        {"goaway_lead_seconds": -0.5},
    ],
)
def test_a_lifetime_that_is_not_a_positive_number_is_refused(emulator: Any, body: dict[str, Any]) -> None:
    """400, and the faults in force stay as they were."""
    emulator.set_faults(max_connection_seconds=5)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        emulator.set_faults(**body)
    assert refused.value.response.status_code == 400
    assert emulator.admin("GET", "/faults")["max_connection_seconds"] == 5.0
