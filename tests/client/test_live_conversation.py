"""The client's Live side against the emulator: the served config as it comes, public SDK only, --camera's extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from service.client.report import Progress, Summary
from service.client.session import LiveConversation, LiveOptions
from tests.emulator.live_support import MODEL, mint

ROOT = Path(__file__).resolve().parents[2]

# connect.config as the service serves it: the Live API's own camelCase JSON.
SERVED = {
    "responseModalities": ["AUDIO"],
    "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
    "systemInstruction": {"parts": [{"text": "Be brief."}], "role": "user"},
    "tools": [{"functionDeclarations": [{"name": "get_current_time", "description": "The time in UTC."}]}],
    "inputAudioTranscription": {},
    "outputAudioTranscription": {},
    "sessionResumption": {},
    "contextWindowCompression": {"slidingWindow": {}},
}
SNAKE = types.LiveConnectConfig.model_validate(SERVED).model_dump(mode="json", exclude_none=True)


async def converse(emulator: Any, config: dict[str, Any]) -> tuple[Summary, dict[str, Any]]:
    """One text turn through LiveConversation with `config`; (summary, the setup the emulator received)."""
    token = await mint(emulator)
    opts = LiveOptions(
        token=token,
        base_url=emulator.base_url,
        api_version="v1alpha",
        ca_file=emulator.ca_file,
        model=MODEL,
        config=config,
        text="hello",
    )
    summary = Summary()
    await LiveConversation(opts, summary, Progress(quiet=True)).run()
    return summary, emulator.sessions()[-1]["client_setup"]


@pytest.mark.parametrize("config", [SERVED, SNAKE], ids=["camelCase-as-served", "snake_case-older-services"])
async def test_served_config_reaches_the_socket_as_the_live_setup(emulator: Any, config: dict[str, Any]) -> None:
    """camelCase (served) and snake_case configs both become the same wire setup, and the turn completes."""
    summary, setup = await converse(emulator, config)
    assert summary.turn_complete
    assert summary.output_transcript == "You said: hello"
    assert summary.audio_bytes_received > 0
    assert setup == {
        "model": f"models/{MODEL}",
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "speechConfig": {"voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}},
        },
        "systemInstruction": {"parts": [{"text": "Be brief."}], "role": "user"},
        "tools": [{"functionDeclarations": [{"description": "The time in UTC.", "name": "get_current_time"}]}],
        "sessionResumption": {},
        "inputAudioTranscription": {},
        "outputAudioTranscription": {},
        "contextWindowCompression": {"sliding_window": {}},
    }


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a snippet with the test interpreter from the repository root."""
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )


def test_client_loads_nothing_from_the_service_side() -> None:
    """The client is a plain SDK user: importing it pulls in no service.* module outside service.client."""
    res = run_python(
        "import sys, service.client.cli, service.client.session\n"
        "print(sorted(m for m in sys.modules if m.startswith('service.') and not m.startswith('service.client')))"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == "[]\n"


def test_camera_without_the_extra_is_one_clear_line() -> None:
    """--camera when OpenCV is not installed: exit 2, one line naming the extra to install, no traceback."""
    res = run_python(
        "import argparse, sys\n"
        "sys.modules['cv2'] = None  # as if livetoken[camera] were not installed\n"
        "from service.client.cli import add_arguments, run\n"
        "parser = argparse.ArgumentParser()\n"
        "add_arguments(parser)\n"
        "sys.exit(run(parser.parse_args(sys.argv[1:])))",
        "--service",
        "http://127.0.0.1:9",
        "--jwt",
        "x",
        "--profile",
        "text",
        "--text",
        "hi",
        "--camera",
    )
    assert res.returncode == 2
    assert res.stderr == (
        "livetoken client: camera capture needs the optional extra: "
        "pip install 'livetoken[camera]' (opencv-python-headless)\n"
    )
