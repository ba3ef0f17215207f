"""A real forward proxy (proxy.py, from PyPI) on a free port, with its access log for assertions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.waiting import wait_until

_ACCESS = re.compile(r"access_log:\d+ - \S+ - (\S+ \S+)")


class ForwardProxy:
    """`proxy` (proxy.py) on 127.0.0.1, optionally requiring Basic credentials; `log` is its access log."""

    def __init__(self, directory: Path, basic_auth: str | None = None) -> None:
        self.directory = directory
        self.basic_auth = basic_auth
        self.log_file = directory / "proxy.log"
        self.port_file = directory / "proxy.port"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        """Start it and wait until it has written its port."""
        args = [
            sys.executable,
            "-m",
            "proxy",
            "--hostname",
            "127.0.0.1",
            "--port",
            "0",
            "--port-file",
            str(self.port_file),
            "--num-acceptors",
            "1",
            "--num-workers",
            "1",
            "--log-file",
            str(self.log_file),
            "--log-level",
            "INFO",
        ]
        if self.basic_auth is not None:
            args += ["--basic-auth", self.basic_auth]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.directory)
        wait_until(
            lambda: self.port_file.exists() and self.port_file.read_text().strip().isdigit(),
            "the proxy has written its port",
            timeout=20,
        )
        self.port = int(self.port_file.read_text())

    def url(self, credentials: str | None = None) -> str:
        """The proxy URL, with `user:password@` when given."""
        return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{self.port}"

    def access(self) -> list[str]:
        """The access log's request lines, e.g. `CONNECT 127.0.0.1:9443`."""
        if not self.log_file.exists():
            return []
        return [m.group(1) for m in _ACCESS.finditer(self.log_file.read_text())]

    def stop(self) -> None:
        """Stop it."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
