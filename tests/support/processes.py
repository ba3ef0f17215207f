"""Run the real `livetoken` CLI as subprocesses, the way a user does."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
LIVETOKEN = [sys.executable, "-m", "service.cli"]


def livetoken_exe() -> str:
    """The installed `livetoken` script next to the test interpreter."""
    return str(Path(sys.executable).parent / "livetoken")


@contextmanager
def serving(config: Path, env: Mapping[str, str]) -> Iterator[tuple[ServiceProcess, str]]:
    """`livetoken serve --config CONFIG` on a free port; yields the process and its base URL, stops it after."""
    from tests.support.redis_proc import free_port

    port = free_port()
    proc = ServiceProcess(["serve", "--config", str(config), "--port", str(port)], env)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(url + "/healthz")
        yield proc, url
    finally:
        proc.stop()


class ServiceProcess:
    """`livetoken serve` in a subprocess, with its output collected for assertions."""

    def __init__(
        self, args: list[str], env: Mapping[str, str], cwd: Path | None = None, nofile: int | None = None
    ) -> None:
        self.args = args
        self.nofile = nofile  # a lower open-files limit (`ulimit -n`) for the child, or None
        self.env = {**os.environ, **env}
        self.cwd = cwd or ROOT
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Start the process and keep reading its combined output."""
        self.proc = subprocess.Popen(
            [livetoken_exe(), *self.args],
            env=self.env,
            cwd=self.cwd,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=None if self.nofile is None else self._lower_nofile,  # noqa: PLW1509 - sets one limit, takes no lock
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _lower_nofile(self) -> None:
        assert self.nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    @property
    def text(self) -> str:
        """Everything the process printed so far."""
        return "".join(self.output)

    def wait_http(self, url: str, timeout: float = 30.0) -> None:
        """Wait until `url` answers (any status), or fail with the process output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"process exited with {self.proc.returncode}:\n{self.text}")
            try:
                httpx.get(url, timeout=0.5)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"{url} did not answer within {timeout}s:\n{self.text}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the process and wait for it to exit; returns its exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode
