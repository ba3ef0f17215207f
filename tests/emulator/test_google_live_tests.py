"""google-genai's own API-mode Live tests (shipped in the wheel, google/genai/tests/live_api/), run unchanged
against the emulator with a plain client on its base URL and the emulator's API key.

They are what Google runs against its real backend; the emulator must pass them as Google does. One cannot pass
here and is run to show exactly why: test_multi_turn asks the model to recall a number from an earlier turn, which
needs a real model's memory of the conversation; the emulator's deterministic model answers each turn on its own.
The Vertex AI variants (use_vertex=True) need Google Cloud credentials and a Vertex endpoint and are deselected.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import google.genai

ROOT = Path(__file__).resolve().parents[2]
GOOGLE_TESTS = Path(google.genai.__file__).parent / "tests"
LIVE_TESTS = GOOGLE_TESTS / "live_api" / "test_live_session.py"


def test_googles_live_tests_pass_against_the_emulator(emulator: Any, tmp_path: Path) -> None:
    """Every Gemini API Live test passes but the one that needs the model to remember an earlier turn."""
    report = tmp_path / "google-live.xml"
    env = {
        **os.environ,
        "GOOGLE_API_KEY": emulator.api_key,
        "SSL_CERT_FILE": str(emulator.ca_file),
        "LIVETOKEN_GOOGLE_TESTS_BASE_URL": emulator.base_url,
        "PYTHONPATH": str(ROOT),
    }
    env.pop("GEMINI_API_KEY", None)  # the SDK would prefer it to GOOGLE_API_KEY
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(LIVE_TESTS),
            "--mode=api",
            "-k",
            "False",  # the Gemini API variants (use_vertex=False)
            "-p",
            "tests.emulator.google_tests_plugin",
            "-p",
            "no:cacheprovider",
            "-c",
            os.devnull,  # Google's settings, not this project's
            "--rootdir",
            str(GOOGLE_TESTS),
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            f"--junitxml={report}",
            "-q",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314 - pytest's own report, written just now
        failure = case.find("failure")
        outcomes[case.attrib["name"]] = "passed" if failure is None else failure.attrib.get("message", "failed")
    assert res.returncode == 1, res.stdout + res.stderr  # exactly the one expected failure below
    assert outcomes.pop("test_text_input[False]") == "passed"
    assert outcomes.pop("test_function_calling[False]") == "passed"
    assert outcomes.pop("test_send_tool_response_without_id_raises[False]") == "passed"
    memory = outcomes.pop("test_multi_turn[False]")
    assert memory.startswith(
        "AssertionError: the second turn should recall context from the first; transcript was "
        "'You said: What number did I ask you to remember?'"
    ), memory
    assert outcomes == {}
