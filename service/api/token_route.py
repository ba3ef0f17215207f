"""POST /v1/tokens: the steps of a token request, served by one raw Litestar route (`@asgi`).

Every caller starts here, so the route skips the framework's parameter parsing and response objects (three
quarters of a bare Litestar request's CPU) but not the framework: it is an ordinary route handler, so the
app's middleware (request context, CORS and its preflights), exception handling and plugins apply to it as to
every other route. Its OpenAPI operation is generated from the flow's msgspec types (api/openapi_docs.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from types import TracebackType

import msgspec
from litestar.handlers import asgi
from litestar.types import Receive, Scope, Send

from service.api.problems import log_refusal, log_unexpected, render_problem
from service.api.schemas import PROBLEM_MEDIA_TYPE
from service.auth.identity import anonymous_caller
from service.errors import (
    AppCheckInvalid,
    InvalidToken,
    LivetokenError,
    MalformedRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from service.issuing import IssueResult, Runtime, TokenRequest
from service.logging import bind_request, fingerprint

TOKEN_PATH = "/v1/tokens"  # noqa: S105 - a route, not a secret
NO_STORE = {"Cache-Control": "no-store"}
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class ClientDisconnected(Exception):
    """The caller went away before its body arrived: nobody is left to answer."""


class BodyDeadline:
    """`with BodyDeadline(seconds)`: TimeoutError if the body read inside has not finished `seconds` after it
    began; arms no timer when the read never has to wait.

    A token request's body is a few dozen bytes that come with the headers, so reading it does not suspend the
    task. The timer is armed from a callback the loop only runs if the task does suspend; a read that finishes
    first cancels that callback unrun (asyncio.timeout would set and cancel a timer on every request).
    """

    __slots__ = ("_arming", "_cancelling", "_due", "_expired", "_loop", "_task", "_timer")

    def __init__(self, seconds: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._due = self._loop.time() + seconds
        self._expired = False
        self._timer: asyncio.TimerHandle | None = None

    def __enter__(self) -> BodyDeadline:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always entered from a task
            raise RuntimeError("BodyDeadline must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._arming = self._loop.call_soon(self._arm)
        return self

    def _arm(self) -> None:
        self._timer = self._loop.call_at(self._due, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._arming.cancel()
        if self._timer is not None:
            self._timer.cancel()
        # As asyncio.timeout: once our timer cancelled the task, take that cancellation back whatever the block
        # raised; it becomes a TimeoutError only if no one else asked to cancel too.
        if self._expired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc


async def read_json_body(
    header: Callable[[str], str | None], receive: Receive, max_bytes: int, read_timeout: float
) -> bytes:
    """The raw body from the ASGI `receive`, refusing wrong media types, oversize and slow uploads cheaply;
    ClientDisconnected when the caller leaves before it is all there."""
    media_type = (header("content-type") or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType
    declared = header("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedRequest("Invalid Content-Length header.")
        if int(declared) > max_bytes:
            raise PayloadTooLarge
    parts: list[bytes] = []
    size = 0
    try:
        with BodyDeadline(read_timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnected
                chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge
                parts.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise MalformedRequest("The request body arrived too slowly.") from None
    return parts[0] if len(parts) == 1 else b"".join(parts)


def decode_token_request(raw: bytes) -> TokenRequest:
    """Parse and validate the body; the error names the field, never echoes its value."""
    try:
        return msgspec.json.decode(raw, type=TokenRequest)
    except msgspec.ValidationError as exc:
        raise MalformedRequest(f"Invalid request body: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise MalformedRequest("The request body is not valid JSON.") from None


async def answer_token_request(rt: Runtime, header: Callable[[str], str | None], receive: Receive) -> IssueResult:
    """Authenticate, then judge the rest of the request, then run the issuing flow; refusals raise."""
    gen = rt.current  # this configuration to the end of the request, whatever a reload does meanwhile
    authorization = header("authorization")
    app_check_token = header("x-firebase-appcheck")
    # No user JWT but an App Check token: an anonymous caller, let in only by a profile that says so (below).
    anonymous = authorization is None and app_check_token is not None and gen.app_check is not None
    with rt.tracing.span("livetoken.authenticate") as span:
        if anonymous and gen.app_check is not None:
            caller = anonymous_caller(await gen.app_check.verify(app_check_token), app_check_token or "")
        else:
            caller = await gen.verifier.verify(authorization)
        if span.is_recording():  # the caller as the logs' fingerprint, never the subject itself
            span.set_attribute("livetoken.subject_fingerprint", fingerprint(caller.subject))
    bind_request(subject=caller.subject, tenant=caller.tenant)
    # A caller must be authenticated before anything else about the request is judged.
    idempotency_key = header("idempotency-key")
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise MalformedRequest("Idempotency-Key must be 1-255 visible ASCII characters.")
    server = gen.settings.file.server
    raw = await read_json_body(header, receive, server.max_body_bytes, float(server.request_timeout))
    body = decode_token_request(raw)
    profile = gen.settings.profiles.get(body.profile)  # an unknown one is the flow's 404
    if profile is not None:
        if anonymous and not profile.anonymous:
            raise InvalidToken("anonymous")  # this profile wants a signed-in user
        if profile.require_app_check and not anonymous:
            if gen.app_check is None:  # pragma: no cover - the configuration rules require [app_check]
                raise AppCheckInvalid("not_configured")
            await gen.app_check.verify(app_check_token)
    # What a repeated Idempotency-Key must match; without one, nothing is compared.
    request_hash = "" if idempotency_key is None else hashlib.sha256(msgspec.json.encode(body)).hexdigest()[:32]
    result = await gen.issuer.issue(caller, body, idempotency_key, request_hash)
    return IssueResult(result.status, result.body, {**result.headers, **NO_STORE})


async def _answer(send: Send, status: int, body: bytes, media_type: bytes | None, headers: dict[str, str]) -> None:
    raw = [(b"content-length", str(len(body)).encode())]
    if media_type is not None:
        raw.append((b"content-type", media_type))
    raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


_ALLOW = {"Allow": "OPTIONS, POST"}


ONE_AUTHORIZATION = "Send exactly one Authorization header."


def _header_reader(scope: Scope) -> Callable[[str], str | None]:
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:  # the first of other repeated headers counts, as in the framework
        if name == b"authorization" and "authorization" in headers:
            # A proxy that honours the last one would disagree with us about who the caller is.
            raise MalformedRequest(ONE_AUTHORIZATION)
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers.get


@asgi(TOKEN_PATH, name="issue_token", copy_scope=False)  # the route only reads the scope
async def token_route(scope: Scope, receive: Receive, send: Send) -> None:
    """POST /v1/tokens (OPTIONS answers which methods exist; CORS preflights never get here)."""
    method = scope["method"]  # type: ignore[typeddict-item]  # an http scope: the route serves no websockets
    if method == "OPTIONS":
        await _answer(send, 204, b"", None, _ALLOW)
        return
    rt: Runtime = scope["litestar_app"].state.runtime
    try:
        if method != "POST":
            raise MethodNotAllowed(headers=_ALLOW)
        header = _header_reader(scope)
        admitted_at = await rt.admit()
        try:
            result = await answer_token_request(rt, header, receive)
        finally:
            rt.release(admitted_at)
    except ClientDisconnected:
        return
    except Exception as exc:
        if isinstance(exc, LivetokenError):
            err = exc
            log_refusal(err)
        else:
            err = log_unexpected(exc)
        status, body, headers = render_problem(rt.metrics, err, scope.get("state", {}).get("request_id"))
        await _answer(send, status, body, PROBLEM_MEDIA_TYPE.encode(), headers)
        return
    await _answer(send, result.status, result.body, b"application/json", result.headers)
