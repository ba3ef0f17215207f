"""The emulator as a real subprocess (`python -m service.emulator`), with helpers for faults and introspection."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


class EmulatorProcess:
    """One running emulator; `base_url`, `api_key` and `ca_file` are what the service is given."""

    def __init__(self, state_dir: Path, *extra_args: str) -> None:
        self.state_dir = state_dir
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.api_key = ""
        self.ca_file = ""
        self._http: httpx.Client | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start on a free port and wait for emulator.json."""
        info_file = self.state_dir / "emulator.json"
        info_file.unlink(missing_ok=True)
        self.log = open(self.state_dir / "emulator.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.emulator",
                "--port",
                "0",
                "--state-dir",
                str(self.state_dir),
                *self.extra_args,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LIVETOKEN_LOG_FORMAT": "json"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited: {(self.state_dir / 'emulator.log').read_text()[-2000:]}")
            if info_file.exists():
                info = json.loads(info_file.read_text())
                self.base_url, self.api_key, self.ca_file = info["base_url"], info["api_key"], info["ca_file"]
                self._http = httpx.Client(
                    base_url=self.base_url,
                    verify=self.ssl_context(),
                    timeout=10,
                    headers={"x-goog-api-key": self.api_key},
                )
                return
            time.sleep(0.05)
        raise RuntimeError("emulator did not start")

    def ssl_context(self) -> ssl.SSLContext:
        """A context that trusts only the emulator's CA."""
        return ssl.create_default_context(cafile=self.ca_file)

    def stop(self) -> None:
        """Terminate the process."""
        if self._http is not None:
            self._http.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.log.close()

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call `/_emulator/…` with the emulator's key."""
        assert self._http is not None
        resp = self._http.request(method, "/_emulator" + path, **kwargs)
        resp.raise_for_status()
        return resp.json()

    def token(self, name: str) -> dict[str, Any]:
        """What the emulator holds for a minted token (uses left, locked setup…)."""
        return dict(self.admin("GET", "/token", params={"name": name}))

    def requests(self) -> list[dict[str, Any]]:
        """auth_tokens requests as received."""
        return list(self.admin("GET", "/requests"))

    def last_request(self) -> dict[str, Any]:
        """The newest auth_tokens request as received."""
        return self.requests()[-1]

    def sessions(self) -> list[dict[str, Any]]:
        """Live sessions with their effective setup."""
        return list(self.admin("GET", "/sessions"))

    def request_count(self) -> int:
        """auth_tokens requests received so far, refused ones included (the attempts a caller's mint made)."""
        return int(self.admin("GET", "/stats")["request_count"])

    def mint_count(self) -> int:
        """Tokens minted so far."""
        return int(self.admin("GET", "/stats")["mint_count"])

    def set_faults(self, **faults: Any) -> None:
        """Replace fault injection (latency_ms, error_rates, drop_rate, fail_next)."""
        self.admin("POST", "/faults", json=faults)

    def fail_next(self, *codes: int | str) -> None:
        """Append failures for the next auth_tokens calls (a status code or "drop")."""
        current = self.admin("GET", "/faults")
        current["fail_next"] = [*current["fail_next"], *codes]
        self.set_faults(**current)

    def set_latency(self, ms: float) -> None:
        """Added latency on auth_tokens."""
        current = self.admin("GET", "/faults")
        current["latency_ms"] = ms
        self.set_faults(**current)

    def clear_faults(self) -> None:
        """No faults."""
        self.admin("DELETE", "/faults")

    def set_key(self, key: str, state: str = "valid") -> None:
        """Add an API key or change its state (valid, revoked, expired, blocked, leaked)."""
        self.admin("POST", "/keys", json={"key": key, "state": state})

    def key_usage(self) -> dict[str, dict[str, Any]]:
        """auth_tokens requests, refusals and mints by API key fingerprint (every key configured or seen)."""
        return {entry["key"]: entry for entry in self.admin("GET", "/keys")}
