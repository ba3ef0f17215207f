"""examples/browser in headless Chromium against dev mode: what a user of the page sees and hears.

One browser launch (tests/frontend/browser_demo.mjs) plays every scenario; each test below checks one of them.
Chromium trusts the emulator's CA through an NSS database (certutil), never through --ignore-certificate-errors,
and its fake microphone plays a WAV: a tone (a spoken turn to the emulator) then silence, looped.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.frontend.conftest import CHROMIUM, DevService, LateService, masked, run_node

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(
    dev_service: DevService,
    late_service: LateService,
    browser_home: Path,
    microphone_wav: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Run every browser scenario once and return what the page showed in each."""
    screenshots = tmp_path_factory.mktemp("screenshots")
    started = time.monotonic()
    result = run_node(
        ["browser_demo.mjs"],
        stdin={
            "demo_url": f"{dev_service.url}/demo/",
            "jwt": dev_service.caller_jwt("alice", "live:tools"),
            "limited_jwt": dev_service.caller_jwt("carol"),
            "configured": {"url": late_service.url, "jwt": late_service.jwt},
            "emulator": {"base_url": dev_service.emulator.base_url, "api_key": dev_service.emulator.api_key},
            "wav": str(microphone_wav),
            "home": str(browser_home),
            "user_data_dir": str(tmp_path_factory.mktemp("chromium-profile")),
            "screenshot_dir": str(screenshots),
            "chromium": CHROMIUM,
        },
        env={"NODE_EXTRA_CA_CERTS": dev_service.emulator.ca_file},
        timeout=300,
    )
    assert result.returncode == 0, masked(f"browser_demo.mjs exited {result.returncode}:\n{result.stderr[-4000:]}")
    out: dict[str, Any] = json.loads(result.stdout)
    out["screenshot_dir"] = str(screenshots)
    (screenshots / "results.json").write_text(masked(result.stdout))  # what each scenario saw, for a failure
    each = ", ".join(f"{name} {result['seconds']:.1f} s" for name, result in out.items() if isinstance(result, dict))
    sys.stderr.write(
        f"browser: {time.monotonic() - started:.1f} s ({each}); screenshots and results in {screenshots}\n"
    )
    return out


def scenario(demo: dict[str, Any], name: str) -> dict[str, Any]:
    """One scenario's results, or a failure that shows where the page was when it stopped."""
    result: dict[str, Any] = demo[name]
    if "failed" in result:
        pytest.fail(f"scenario {name} failed: {result['failed']}\npage: {json.dumps(result.get('page'), indent=1)}")
    return result


def lines(text: str | None) -> list[str]:
    """The visible lines of a block of text."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def reply_seconds(text: str) -> float:
    """The emulator's reply audio lasts 60 ms per character of the reply, between 0.5 s and 4 s."""
    return min(4.0, max(0.5, 0.06 * len(text)))


def reply_chunks(text: str) -> int:
    """How many messages carry that audio: the emulator sends 24 kHz PCM16 in 40 ms (1920-byte) chunks."""
    return math.ceil(int(reply_seconds(text) * 24_000) * 2 / 1920)


CALCULATED = 'calculate returned {"result": 42}.'
CHECKING = "Checking get_current_time."


def test_voice_turn_shows_both_transcripts_and_plays_the_reply(demo: dict[str, Any]) -> None:
    """Connect, speak (the fake microphone's tone): the user's transcript, the model's, and the whole reply played."""
    turn = scenario(demo, "voice")["turn"]
    assert re.fullmatch(r"Connected: voice on \S+ \(voice Puck\)", turn["status"])
    assert turn["error"] is None
    user, model = turn["entries"][:2]
    heard = re.fullmatch(r"\((\d+\.\d) seconds of audio\)", user["text"])
    assert heard is not None, user
    assert (user["role"], user["state"]) == ("user", "done")
    assert 1.3 <= float(heard[1]) <= 1.8  # 0.8 s of tone, then the 0.6 s of silence that ends the turn
    assert model == {"role": "model", "state": "done", "text": f"I heard {heard[1]} seconds of audio."}
    expected = reply_seconds(model["text"])
    assert float(turn["audio"]["scheduledSeconds"]) == pytest.approx(expected, abs=0.001)
    assert float(turn["audio"]["playedSeconds"]) == pytest.approx(expected, abs=0.001)
    assert turn["audioStarts"] == int(turn["audio"]["chunks"])  # every chunk reached the speakers
    assert turn["mic"]["text"].startswith("on, ")
    assert (Path(demo["screenshot_dir"]) / "voice.png").stat().st_size > 0


def test_speaking_over_the_answer_stops_playback_at_once(demo: dict[str, Any]) -> None:
    """A typed question's long spoken answer is cut when the microphone hears speech: nothing stays queued."""
    after = scenario(demo, "voice")["interrupted"]
    typed = next(i for i, e in enumerate(after["entries"]) if e["role"] == "user" and "lighthouse" in e["text"])
    assert after["entries"][typed]["text"] == "Please tell me a long story about a lighthouse keeper and the sea."
    answer = after["entries"][typed + 1]
    assert (answer["role"], answer["state"]) == ("model", "interrupted")
    audio = after["audio"]
    assert audio["interruptions"] == "1"
    assert float(audio["cutSeconds"]) > 0
    assert float(audio["queuedSeconds"]) == 0


def test_second_connect_with_the_same_token_shows_close_code_and_reason(demo: dict[str, Any]) -> None:
    """Tokens are single-use: reusing one is refused by the Live API, and the page says so in a sentence, with 1008
    and the Live API's reason."""
    reused = scenario(demo, "voice")["reused"]
    assert lines(reused["error"]) == [
        "Live session refused",
        "This token has already opened its session: a token opens only one.",
        "Close code 1008: Unauthenticated: ephemeral token has no uses left",
    ]
    assert reused["status"] == "Not connected"


def test_text_profile_shows_the_transcript_and_plays_nothing(demo: dict[str, Any]) -> None:
    """The text profile: the model answers in audio, the page shows its transcript as the reply and plays none of it."""
    result = scenario(demo, "text")
    profile = result["profile"]
    assert (profile["model"], profile["model_status"], profile["presentation"]) == (
        "gemini-3.8-live",
        "GA",
        "transcript",
    )
    loaded = result["loaded"]
    assert loaded["description"] == (
        f"{profile['description']} Model gemini-3.8-live (GA); replies shown as text, not played"
    )
    assert result["connected"]["status"] == "Connected: text on gemini-3.8-live, replies shown as text"
    turn = result["turn"]
    assert turn["error"] is None
    assert turn["entries"] == [
        {"role": "user", "state": "done", "text": "Hello there"},
        {"role": "model", "state": "done", "text": "You said: Hello there"},
    ]
    chunks = reply_chunks("You said: Hello there")
    assert turn["audio"] == {
        "text": f"not played (this profile shows the transcript): {chunks} chunks received",
        "scheduledSeconds": "0",
        "playedSeconds": "0",
        "chunks": "0",
        "unplayedChunks": str(chunks),
    }
    assert turn["audioStarts"] == 0


def test_blocking_tool_call_is_answered_in_the_page(demo: dict[str, Any]) -> None:
    """The tools profile: the model calls calculate (blocking), the page computes it, the model reads the result."""
    turn = scenario(demo, "tools")["blocking"]
    assert turn["entries"] == [
        {"role": "user", "state": "done", "text": "calculate 6*7"},
        {"role": "tool", "state": "done", "text": 'calculate({"expression":"6*7"}) → {"result":42}'},
        {"role": "model", "state": "done", "text": CALCULATED},
    ]
    assert float(turn["audio"]["playedSeconds"]) == pytest.approx(reply_seconds(CALCULATED), abs=0.001)


def test_non_blocking_tool_result_is_spoken_after_the_reply_in_progress(demo: dict[str, Any]) -> None:
    """get_current_time is non-blocking: the page answers at once with WHEN_IDLE while the model keeps talking; the
    result is spoken as a turn of its own once that reply is over, and nothing is cut or left unplayed."""
    result = scenario(demo, "tools")
    entries = result["nonBlocking"]["entries"]
    answered = re.fullmatch(
        r'get_current_time\(\{\}\) → \{"utc":"([\d:.TZ-]+)"\} \(non-blocking, WHEN_IDLE\)', entries[4]["text"]
    )
    assert answered is not None, entries
    spoken = f'get_current_time returned {{"utc": "{answered[1]}"}}.'
    assert entries[3:] == [
        {"role": "user", "state": "done", "text": "get_current_time"},
        {"role": "tool", "state": "done", "text": answered[0]},
        {"role": "model", "state": "done", "text": CHECKING},
        {"role": "model", "state": "done", "text": spoken},
    ]
    # When the result's audio began (its entry opened), the reply in progress had all arrived, whole and uncut.
    opened = next(moment for moment in result["timeline"] if len(moment["entries"]) == len(entries))
    assert opened["entries"][5:] == [
        {"role": "model", "state": "done", "text": CHECKING},
        {"role": "model", "state": "open", "text": ""},
    ]
    before = reply_seconds(CALCULATED) + reply_seconds(CHECKING)
    assert float(opened["audio"]["scheduledSeconds"]) >= before + 0.04 - 0.001  # then at least one result chunk
    assert (opened["audio"]["interruptions"], opened["audio"]["cutSeconds"]) == ("0", "0")
    audio = result["nonBlocking"]["audio"]
    total = before + reply_seconds(spoken)
    assert float(audio["scheduledSeconds"]) == pytest.approx(total, abs=0.001)
    assert audio["playedSeconds"] == audio["scheduledSeconds"]
    assert (audio["interruptions"], audio["cutSeconds"], audio["queuedSeconds"]) == ("0", "0", "0")
    chunks = reply_chunks(CALCULATED) + reply_chunks(CHECKING) + reply_chunks(spoken)
    assert int(audio["chunks"]) == chunks
    assert result["nonBlocking"]["audioStarts"] == chunks


def test_refused_token_shows_the_problem_and_retry_after(demo: dict[str, Any]) -> None:
    """A caller over its rate limit, with retries turned off, sees the problem's title and detail and how long to
    wait."""
    result = scenario(demo, "rateLimited")
    problem = result["problem"]
    shown = lines(result["refused"]["error"])
    assert shown[:3] == ["Token refused", f"429 {problem['title']}", problem["detail"]]
    assert re.fullmatch(r"Retry after [12] s\.", shown[3]), shown
    assert len(shown) == 4
    assert result["refused"]["status"] == "Not connected"


def test_camera_frames_reach_the_model(demo: dict[str, Any]) -> None:
    """The video profile: the (fake) camera is previewed and sent at 1 frame/s; the answer counts the frames."""
    turn = scenario(demo, "camera")["turn"]
    sent = re.fullmatch(r"camera, (\d+) frames? sent", turn["video"]["text"])
    assert sent is not None, turn["video"]
    answer = next(e["text"] for e in turn["entries"] if e["role"] == "model" and e["state"] == "done")
    seen = re.fullmatch(r"I saw (\d+) frames? and heard \d+\.\d seconds of audio\.", answer)
    assert seen is not None, answer
    assert 1 <= int(seen[1]) <= int(sent[1])


def test_screen_frames_reach_the_model_with_a_typed_question(demo: dict[str, Any]) -> None:
    """Screen sharing (the fake screen) and a typed question: the answer counts the frames sent before it."""
    result = scenario(demo, "screen")
    before = int(result["before"]["video"]["frames"])
    after = result["turn"]["video"]
    assert re.fullmatch(r"screen, \d+ frames sent", after["text"]), after
    entries = result["turn"]["entries"]
    assert entries[0] == {"role": "user", "state": "done", "text": "What do you see?"}
    seen = re.fullmatch(r"I saw (\d+) frames\. You said: What do you see\?", entries[1]["text"])
    assert seen is not None, entries
    assert before <= int(seen[1]) <= int(after["frames"])


def test_jwt_from_the_fragment_leaves_the_address_bar(demo: dict[str, Any]) -> None:
    """`#jwt=…` fills the JWT field and is removed from the URL (and the history) at once."""
    loaded = scenario(demo, "voice")["loaded"]
    assert loaded["jwtField"] is True
    assert "jwt" not in loaded["url"]
    assert loaded["profiles"] == ["text", "thinking", "tools", "video", "voice"]
    assert loaded["options"] == [
        "text (text replies)",
        "thinking (spoken replies)",
        "tools (spoken replies)",
        "video (spoken replies)",
        "voice (spoken replies)",
    ]


def test_page_raises_no_uncaught_errors(demo: dict[str, Any]) -> None:
    """No scenario leaves an uncaught exception in the page."""
    assert demo["page_errors"] == []


def test_a_rate_limited_token_request_counts_down_then_connects(demo: dict[str, Any]) -> None:
    """With retries on (the default), a 429 is waited out: the status line counts Retry-After down to 1 s, the page
    asks again and connects, and shows no error."""
    result = scenario(demo, "rateLimited")
    assert result["problemAgain"] is not None  # the caller was over its limit when it pressed Connect
    statuses = result["statuses"]
    first = re.fullmatch(r"Rate limited — retrying in ([12]) s", statuses[2])
    assert first is not None, statuses
    assert statuses == [
        "Not connected",
        "Fetching a token…",
        *[f"Rate limited — retrying in {n} s" for n in range(int(first[1]), 0, -1)],
        "Opening the Live session…",
        "Connected: text on gemini-3.8-live, replies shown as text",
    ]
    assert result["retried"]["error"] is None


RECONNECTED = "Reconnected, session continues."


def test_a_voice_conversation_goes_on_across_reconnections(demo: dict[str, Any]) -> None:
    """Connections cut every 4 s: the page moves the session to a new connection each time and says so; every earlier
    line stays; each spoken turn is heard whole and answered whole, one after the third reconnection too; every
    reply is played; the emulator saw one session resumed on the same token at each reconnection."""
    result = scenario(demo, "reconnections")
    seen = result["continued"]
    assert seen["error"] is None
    assert re.fullmatch(r"Connected: voice on \S+ \(voice Puck\)", seen["status"])
    assert seen["mic"]["text"].startswith("on, ")
    entries = seen["entries"]
    notes = [i for i, entry in enumerate(entries) if entry["role"] == "note"]
    assert len(notes) >= 3
    assert {entries[i]["text"] for i in notes} == {RECONNECTED}
    assert any(entry["role"] == "model" for entry in entries[notes[2] :])
    # What the transcript showed at each reconnection is still there, unchanged, at the top.
    for moment in result["atReconnection"]:
        assert entries[: len(moment["entries"])] == moment["entries"]
    turns = [entry for entry in entries if entry["role"] != "note"]
    assert len(turns) >= 2
    assert len(turns) % 2 == 0, turns
    for user, model in zip(turns[::2], turns[1::2], strict=True):
        heard = re.fullmatch(r"\((\d\.\d) seconds of audio\)", user["text"])
        assert heard is not None, user
        assert (user["role"], user["state"]) == ("user", "done")
        # The whole spoken turn (0.8 s of tone, 0.6 s of silence), however the connections cut it; the emulator counts
        # the silence before it too, never more than one loop of the microphone (5 s): nothing was heard twice.
        assert 1.3 <= float(heard[1]) <= 5.0
        assert model == {"role": "model", "state": "done", "text": f"I heard {heard[1]} seconds of audio."}
    replies = [model["text"] for model in turns[1::2]]
    audio = seen["audio"]
    assert float(audio["scheduledSeconds"]) == pytest.approx(sum(map(reply_seconds, replies)), abs=0.001)
    assert audio["playedSeconds"] == audio["scheduledSeconds"]
    assert int(audio["chunks"]) == seen["audioStarts"] == sum(map(reply_chunks, replies))
    assert (audio["interruptions"], audio["cutSeconds"]) == ("0", "0")
    for moment in result["atReconnection"][:3]:  # reply audio kept coming after each reconnection
        assert float(moment["audio"]["scheduledSeconds"]) < float(audio["scheduledSeconds"])

    final = result["disconnected"]
    assert final["status"] == "Disconnected"
    reconnected = sum(1 for entry in final["entries"] if entry["role"] == "note")
    first = {"resumed": False, "sameToken": True, "video": False}
    assert result["sessions"] == [first] + [{**first, "resumed": True}] * reconnected


NEW_SESSION = "Reconnected with a new token: a new session started, and the model does not remember what came before."


def test_a_profile_without_resumption_goes_on_in_a_new_session_and_says_so(demo: dict[str, Any]) -> None:
    """A profile without session resumption: when its connection ends the page starts a new session on a fresh token and
    says the model has forgotten; a message typed afterwards is answered. Each connection was a new session of its
    own token."""
    result = scenario(demo, "newSession")
    after = result["after"]
    assert after["error"] is None
    assert after["status"] == "Disconnected"
    entries = after["entries"]
    notes = [i for i, entry in enumerate(entries) if entry["role"] == "note"]
    assert notes
    assert {entries[i]["text"] for i in notes} == {NEW_SESSION}
    assert [entry for entry in entries if entry["role"] != "note"] == [
        {"role": "user", "state": "done", "text": "Are you still there?"},
        {"role": "model", "state": "done", "text": "You said: Are you still there?"},
    ]
    assert entries.index({"role": "user", "state": "done", "text": "Are you still there?"}) > notes[0]
    assert len(result["sessions"]) == 1 + len(notes)
    assert [session["resumed"] for session in result["sessions"]] == [False] * len(result["sessions"])
    assert [session["sameToken"] for session in result["sessions"]] == [True] + [False] * len(notes)


def test_a_video_session_at_its_limit_says_why_it_ended_and_stops(demo: dict[str, Any]) -> None:
    """The video session limit (cut to 3 s): the page says plainly that the session is over and why, with the close
    code and the Live API's reason, and stops (camera off, Connect available). Before it, the goAway moved the session
    once; the new connection heard of the same end and the page waited for the close rather than move again."""
    result = scenario(demo, "videoLimit")
    ended = result["ended"]
    reason = "Session limit reached: audio+video sessions last 3s without context window compression"
    why = "This conversation reached the Live API's time limit for sessions with video: 3 seconds."
    assert lines(ended["error"]) == [
        "Session over",
        why,
        f"Close code 1008: {reason}",
        "Press Connect to start a new conversation.",
    ]
    assert ended["status"] == "Session over"
    assert ended["connectEnabled"] is True
    assert (ended["video"]["text"], ended["mic"]["text"]) == ("off", "off")
    assert [entry for entry in ended["entries"] if entry["role"] == "note"] == [
        {"role": "note", "state": "done", "text": RECONNECTED},
        {"role": "note", "state": "done", "text": why},
    ]
    first = {"resumed": False, "sameToken": True, "video": True}
    assert result["sessions"] == [first, {**first, "resumed": True}]
