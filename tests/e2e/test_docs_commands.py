"""Every shell block the README and the docs mark `<!-- runnable -->` runs as printed against dev mode, from the
repository's root, as a newcomer pastes it after `make run` (only the port differs: dev mode's 8080 is another
test's or the user's own, so a free one is substituted).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ROOT, ServiceProcess
from tests.support.redis_proc import free_port

RUNNABLE = re.compile(r"^<!-- runnable -->\n```(?:sh|bash)\n(.*?)^```$", re.S | re.M)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def runnable_blocks() -> list[tuple[str, str]]:
    """(where, shell text) of every marked block."""
    found = []
    for page in PAGES:
        for number, match in enumerate(RUNNABLE.finditer(page.read_text()), 1):
            found.append((f"{page.relative_to(ROOT)}#{number}", match.group(1)))
    return found


BLOCKS = runnable_blocks()


@pytest.fixture(scope="module")
def dev_mode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    state = tmp_path_factory.mktemp("state")
    port = free_port()
    env = {"LIVETOKEN_STATE_DIR": str(state), "LIVETOKEN_CONFIG": "", "LIVETOKEN_LOG_FORMAT": "json"}
    proc = ServiceProcess(["serve", "--port", str(port)], env)
    proc.start()
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        yield port, state
    finally:
        proc.stop()


def test_the_readme_marks_its_try_it_commands_runnable() -> None:
    """The README's "Try it" token request and client run are among the blocks run below."""
    readme = [text for where, text in BLOCKS if where.startswith("README.md")]
    assert any("curl -sS -X POST http://127.0.0.1:8080/v1/tokens" in text for text in readme)
    assert any("livetoken client --service http://127.0.0.1:8080" in text for text in readme)


@pytest.mark.parametrize(("where", "text"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_a_runnable_block_runs_as_printed(dev_mode: tuple[int, Path], where: str, text: str) -> None:
    """The block exits 0 under `bash -e` and prints no error; a token request prints a token."""
    port, state = dev_mode
    script = "set -euo pipefail\n" + text.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(state), "LIVETOKEN_STATE_DIR": str(state), "LIVETOKEN_CONFIG": ""}
    done = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{where} exited {done.returncode}:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
    if "/v1/tokens" in text:
        assert '"token":"auth_tokens/' in done.stdout.replace(" ", ""), done.stdout[-800:]
