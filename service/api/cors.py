"""CORS for browser callers: preflights answered here, allowed origins echoed, refused ones told so in
problem+json like every other refusal (a pure ASGI middleware in the app's one stack)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import log_refusal, render_problem
from service.api.schemas import PROBLEM_MEDIA_TYPE
from service.errors import LivetokenError, MalformedRequest, OriginNotAllowed
from service.metrics import Metrics

ALLOW_METHODS = ("GET", "POST")
ALLOW_HEADERS = ("authorization", "content-type", "idempotency-key", "x-firebase-appcheck", "x-request-id")
EXPOSE_HEADERS = b"RateLimit, RateLimit-Policy, Retry-After, X-Request-ID, Idempotent-Replayed"
PREFLIGHT_MAX_AGE = b"600"
# Dev mode's own origins: any port on the loopback names a frontend developer's dev server uses.
_LOCAL_ORIGIN = re.compile(r"http://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?")


class CorsPolicy:
    """Which browser origins may call the service: exact origins, `*`, and (dev mode) local ones."""

    def __init__(self, origins: Iterable[str], *, allow_local: bool = False) -> None:
        self.update(origins, allow_local=allow_local)

    def update(self, origins: Iterable[str], *, allow_local: bool) -> None:
        """Take new origins (a configuration reload); every middleware instance shares this one policy."""
        self.origins = frozenset(origins)
        self.allow_local = allow_local
        self._any = "*" in self.origins

    def allows(self, origin: str) -> bool:
        """Whether a page served from `origin` may call the API."""
        return self._any or origin in self.origins or (self.allow_local and _LOCAL_ORIGIN.fullmatch(origin) is not None)


class CorsMiddleware:
    """Answers preflights and adds `Access-Control-*` headers for allowed origins; requests without an Origin
    header pass untouched."""

    def __init__(self, app: ASGIApp, policy: CorsPolicy, metrics: Metrics) -> None:
        self.app = app
        self.policy = policy
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        origin = preflight_method = preflight_headers = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"access-control-request-method":
                preflight_method = value.decode("latin-1")
            elif name == b"access-control-request-headers":
                preflight_headers = value.decode("latin-1")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and preflight_method is not None:
            await self._preflight(scope, send, origin, preflight_method, preflight_headers)
            return
        if not self.policy.allows(origin):
            await self.app(scope, receive, send)  # not ours to refuse: the browser hides the answer from the page
            return
        await self.app(scope, receive, _with_cors_headers(send, origin.encode("latin-1")))

    async def _preflight(self, scope: Scope, send: Send, origin: str, method: str, headers: str | None) -> None:
        err: LivetokenError | None = None
        if not self.policy.allows(origin):
            err = OriginNotAllowed()
        elif method not in ALLOW_METHODS or not _headers_allowed(headers):
            err = MalformedRequest(
                f"A browser may call this API with {', '.join(ALLOW_METHODS)} and the headers "
                f"{', '.join(ALLOW_HEADERS)} only."
            )
        if err is not None:
            log_refusal(err)
            status, body, extra = render_problem(self.metrics, err, scope.get("state", {}).get("request_id"))
            raw = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
            raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
            raw.append((b"vary", b"Origin"))
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-allow-methods", ", ".join(ALLOW_METHODS).encode()),
                    (b"access-control-allow-headers", ", ".join(ALLOW_HEADERS).encode()),
                    (b"access-control-max-age", PREFLIGHT_MAX_AGE),
                    (b"vary", b"Origin"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _headers_allowed(requested: str | None) -> bool:
    if not requested:
        return True
    return all(h.strip().lower() in ALLOW_HEADERS for h in requested.split(",") if h.strip())


def _with_cors_headers(send: Send, origin: bytes) -> Send:
    async def send_with_cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                *message.get("headers", ()),
                (b"access-control-allow-origin", origin),
                (b"access-control-expose-headers", EXPOSE_HEADERS),
                (b"vary", b"Origin"),
            ]
        await send(message)

    return send_with_cors
