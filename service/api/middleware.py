"""Per-request context: request id, structured-log binding, latency and status metrics, `no-store`."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from service.logging import begin_request_context, end_request_context
from service.metrics import Metrics
from service.tracing import NO_TRACING, Tracing

NO_STORE = (b"cache-control", b"no-store")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def request_ids() -> Iterator[str]:
    """Unique request ids without a system call each (uuid4 reads the kernel's random pool every time):
    a random per-process prefix, then a counter. Ids name requests; they guard nothing, so need not be secret."""
    prefix = secrets.token_hex(8)
    return (f"{prefix}{n:08x}" for n in itertools.count(1))


class RequestContextMiddleware:
    """Pure ASGI middleware (cheap): binds request_id, counts the answer by route template and status.

    When the request is traced (the tracing plugin's server span is current here), the span is named by the
    route template and the latency observation carries the trace id as its exemplar.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, tracing: Tracing = NO_TRACING) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing
        self._ids = request_ids()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                # Honour a caller's id only if it is short and plain, so it cannot inject into logs.
                request_id = candidate if _REQUEST_ID.match(candidate) else ""
                break
        request_id = request_id or next(self._ids)
        scope.setdefault("state", {})["request_id"] = request_id
        context = begin_request_context(request_id=request_id)
        route = scope.get("path_template") or "unmatched"
        tracing = self.tracing
        if tracing.enabled and route != "unmatched":
            tracing.name_route(scope["method"], route, request_id)
        status = 500
        started = time.perf_counter()
        metrics = self.metrics
        metrics.requests_in_flight += 1

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers: Any = message.get("headers", [])
                if not isinstance(headers, list):
                    headers = message["headers"] = list(headers)
                if all(name.lower() != b"cache-control" for name, _ in headers):
                    headers.append(NO_STORE)  # nothing this service says may be cached by a shared cache
                headers.append((b"x-request-id", request_id.encode()))
            await send(message)

        http_scope: HTTPScope = scope
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            metrics.requests_in_flight -= 1
            metrics.count_request(
                route, http_scope["method"], status, time.perf_counter() - started, tracing.exemplar()
            )
            end_request_context(context)
