"""Google's JS SDK in Node (node:test, tests/frontend/live_sdk.test.mjs) against the emulator with livetoken tokens.

Node trusts the emulator's CA through NODE_EXTRA_CA_CERTS, as the README tells Node users to.
"""

from __future__ import annotations

import sys
import time
import xml.etree.ElementTree as ET

import pytest

from tests.frontend.conftest import DevService, LateService, masked, run_node

pytestmark = pytest.mark.slow

NODE_TESTS = [
    "dev mode ships exactly the profiles tested here",
    "voice: 16 kHz PCM in, transcripts both ways and 24 kHz PCM out",
    "thinking: extended thinking at MEDIUM, audio and transcripts",
    "text: the reply's output transcription is its text; its audio is not for playing",
    "tools: a non-blocking call answered with WHEN_IDLE is spoken after the reply in progress",
    "tools: a blocking call answered with sendToolResponse",
    "video: frames sent with realtimeInput.video are counted in the answer",
    "a token opens one session: the second is refused with 1008",
    "a token past its new-session window is refused with 1008",
    "the emulator's API key through the SDK's ?key= route",
    "TEXT replies from gemini-3.8-live are refused with 1007, as Google does",
]


@pytest.fixture(scope="module")
def node_results(
    dev_service: DevService, late_service: LateService, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str | None]:
    """Run the Node tests once: each test's name and its failure message (None when it passed)."""
    junit = tmp_path_factory.mktemp("node-test") / "junit.xml"
    started = time.monotonic()
    result = run_node(
        [
            "--test",
            "--test-reporter=junit",
            f"--test-reporter-destination={junit}",
            "--test-reporter=spec",
            "--test-reporter-destination=stdout",
            "live_sdk.test.mjs",
        ],
        env={
            "LIVETOKEN_URL": dev_service.url,
            "LIVETOKEN_JWT": dev_service.caller_jwt("dana", "live:tools"),
            "LIVETOKEN_LATE_URL": late_service.url,
            "LIVETOKEN_LATE_JWT": late_service.jwt,
            "EMULATOR_BASE_URL": dev_service.emulator.base_url,
            "EMULATOR_API_KEY": dev_service.emulator.api_key,
            "NODE_EXTRA_CA_CERTS": dev_service.emulator.ca_file,
        },
        timeout=120,
    )
    sys.stderr.write(f"node --test: {time.monotonic() - started:.1f} s\n")
    key = dev_service.emulator.api_key
    if not junit.exists():
        pytest.fail(
            masked(f"node --test exited {result.returncode} without a report:\n{result.stdout}{result.stderr}", key)
        )
    outcomes: dict[str, str | None] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own test runner's report
        failure = case.find("failure")
        message = None if failure is None else (failure.text or failure.attrib.get("message") or "failed")
        outcomes[case.attrib["name"]] = None if message is None else masked(message, key)
    return outcomes


def test_every_node_test_is_checked(node_results: dict[str, str | None]) -> None:
    """The Node file runs exactly the tests listed here, so none is added or dropped unnoticed."""
    assert sorted(node_results) == sorted(NODE_TESTS)


@pytest.mark.parametrize("name", NODE_TESTS)
def test_js_sdk_in_node(node_results: dict[str, str | None], name: str) -> None:
    """Each Node test passes: every dev profile (voice, thinking, text as a transcript, non-blocking and blocking
    tools, video frames), single use, the new-session window, the ?key= route and its 1007 for TEXT replies."""
    assert name in node_results, f"node did not run {name!r}"
    assert node_results[name] is None, node_results[name]
