"""The CLI explains start-up problems in one line instead of a traceback."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

from tests.support.processes import livetoken_exe
from tests.support.service import service_env, write_config


def test_busy_port_is_explained(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """`livetoken serve` on a port in use exits 1 with a line naming the address and the fix."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = subprocess.run(
            [livetoken_exe(), "serve", "--config", str(write_config(tmp_path)), "--port", str(port)],
            env=service_env(emulator, redis_url) | {"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert res.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in res.stderr
    assert "Traceback" not in res.stderr


def test_bad_config_is_explained(tmp_path: Path) -> None:
    """A broken config file stops `serve` with exit 2 and the key named, before anything starts."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[[issuers]]\nissuer = "x"\n')
    res = subprocess.run(
        [livetoken_exe(), "serve", "--config", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 2
    assert "configuration error" in res.stderr
    assert "issuers[0].audiences: required key is missing" in res.stderr
