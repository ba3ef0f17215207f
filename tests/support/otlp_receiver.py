"""A tiny OTLP/HTTP trace receiver (what a collector's port 4318 does): real protobuf, parsed with the
`opentelemetry-proto` package. Tests read the spans it received; the bench runs it as a process that only
counts (`python -m tests.support.otlp_receiver PORT`).
"""

from __future__ import annotations

import gzip
import signal
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_OK = ExportTraceServiceResponse().SerializeToString()


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        found[pair.key] = _value(pair.value)
    return found


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived over OTLP."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int
    events: list[dict[str, Any]] = field(default_factory=list)


class OTLPReceiver:
    """Serves `POST /v1/traces` on a free local port; `keep=False` only counts what arrives."""

    def __init__(self, *, keep: bool = True, port: int = 0) -> None:
        self.received: list[ReceivedSpan] = []
        self.requests = 0
        self.span_count = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                owner.take(body, keep)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(_OK)))
                self.end_headers()
                self.wfile.write(_OK)

            def log_message(self, *_args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def take(self, body: bytes, keep: bool) -> None:
        """Parse one export request and remember its spans (or only count them)."""
        request = ExportTraceServiceRequest.FromString(body)
        spans: list[ReceivedSpan] = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                spans += [
                    ReceivedSpan(
                        name=s.name,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        kind=s.kind,
                        attributes=_attributes(s.attributes),
                        resource=resource,
                        status_code=s.status.code,
                        events=[{"name": e.name, **_attributes(e.attributes)} for e in s.events],
                    )
                    for s in scope_spans.spans
                ]
        with self._lock:
            self.requests += 1
            self.span_count += len(spans)
            if keep:
                self.received += spans

    def spans(self, trace_id: str | None = None) -> list[ReceivedSpan]:
        """What arrived so far (of one trace)."""
        with self._lock:
            return [s for s in self.received if trace_id is None or s.trace_id == trace_id]

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    """`python -m tests.support.otlp_receiver PORT`: counts the spans it receives until SIGTERM, then prints
    `spans=N requests=M`."""
    receiver = OTLPReceiver(keep=False, port=int(sys.argv[1]))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    while not stop.wait(0.1):
        pass
    receiver.close()
    print(f"spans={receiver.span_count} requests={receiver.requests}", flush=True)


if __name__ == "__main__":
    main()
