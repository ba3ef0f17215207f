"""`make bench`'s traced rows: the same service with tracing on, every request sampled (`always_on`) or 1% of them,
its spans exported over OTLP/HTTP to a local receiver process that only counts them, next to the untraced one.

The receiver runs in its own process, so what the service pays is what the table shows: the spans, the
instrumentations and the batch exporter's thread (protobuf encoding and the HTTP posts).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.redis_proc import free_port

ROOT = Path(__file__).resolve().parent.parent


class TracedService:
    """`livetoken serve` with OTEL_* set, and the receiver its spans go to."""

    def __init__(self, exe: str, config: Path, env: dict[str, str], log: Path, ratio: float = 1.0) -> None:
        receiver_port = free_port()
        self.port = free_port()
        self.receiver = subprocess.Popen(
            [sys.executable, "-m", "tests.support.otlp_receiver", str(receiver_port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.receiver.stdout is None or self.receiver.stdout.readline().strip() != "ready":
            raise RuntimeError("the OTLP receiver did not start")
        traced_env = {
            **env,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver_port}",
            "OTEL_SERVICE_NAME": "livetoken-bench",
            # Every request sampled, or (ratio < 1) that share of them, by trace id.
            "OTEL_TRACES_SAMPLER": "always_on" if ratio >= 1 else "traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": str(ratio),
            # Nothing dropped at thousands of spans a second: the bench measures exporting every one of them.
            "OTEL_BSP_MAX_QUEUE_SIZE": "262144",
            "OTEL_BSP_SCHEDULE_DELAY": "500",
        }
        self.proc = subprocess.Popen(
            [exe, "serve", "--config", str(config), "--port", str(self.port)],
            env=traced_env,
            stdout=subprocess.DEVNULL,
            stderr=open(log, "wb"),
        )
        self.pid = self.proc.pid

    def spans_exported(self) -> int:
        """Stop the service (SIGTERM exports what it still holds) and the receiver; the spans it received."""
        self.proc.terminate()
        self.proc.wait(30)
        self.receiver.send_signal(signal.SIGTERM)
        out, _ = self.receiver.communicate(timeout=30)
        counts = dict(part.split("=") for part in out.split() if "=" in part)
        return int(counts.get("spans", 0))

    def close(self) -> None:
        """Stop whatever still runs."""
        for proc in (self.proc, self.receiver):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)


def tracing_installed() -> bool:
    """Whether the `livetoken[otel]` extra is there to measure."""
    from service.tracing import tracing_config

    return tracing_config({**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}).enabled
