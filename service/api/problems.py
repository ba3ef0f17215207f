"""The one place where exceptions become RFC 9457 problem+json responses, each counted in metrics."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.types import ExceptionHandlersMap

from service import errors
from service.api.schemas import PROBLEM_MEDIA_TYPE
from service.logging import get_logger
from service.metrics import Metrics

log = get_logger("livetoken.http")


def _from_litestar(exc: HTTPException) -> errors.LivetokenError:  # noqa: PLR0911 - one return per framework refusal: a flat map
    """Map the framework's own refusals (routing, body size) onto our error tree."""
    status = exc.status_code
    if isinstance(exc, NotFoundException):
        return errors.NotFound()
    if isinstance(exc, MethodNotAllowedException):
        return errors.MethodNotAllowed(headers=exc.headers)
    if status == 413:
        return errors.PayloadTooLarge()
    if status == 415:
        return errors.UnsupportedMediaType()
    if isinstance(exc, ValidationException | ClientException) and status == 400:
        return errors.MalformedRequest()
    if status == 429:
        return errors.RateLimited()
    if 400 <= status < 500:
        return errors.RequestRefused(status)
    return errors.LivetokenError()


def _problem_head(err: errors.LivetokenError) -> bytes:
    """The problem body without its closing brace: status, type, title, detail."""
    body = {"status": err.status, "type": err.type_uri, "title": err.title, "detail": err.detail}
    return msgspec.json.encode(body)[:-1]


# A refusal with its class's own detail renders the same bytes every time (a flood of 401s and 429s is made of
# these): encoded once per class and status. A detail made for one request (a validation message) is encoded each time.
_HEADS: dict[tuple[type[errors.LivetokenError], int], bytes] = {}


def render_problem(
    metrics: Metrics, err: errors.LivetokenError, request_id: str | None
) -> tuple[int, bytes, dict[str, str]]:
    """Status, problem+json body and headers for `err`, counted as a rejection (framework-free)."""
    metrics.inc(metrics.rejections, err.slug)
    if err.detail is err.default_detail:
        kind = (type(err), err.status)  # the status too: RequestRefused keeps the framework's 4xx
        head = _HEADS.get(kind)
        if head is None:
            head = _HEADS[kind] = _problem_head(err)
    else:
        head = _problem_head(err)
    body = head + b',"request_id":' + msgspec.json.encode(request_id) + b"}" if request_id else head + b"}"
    return err.status, body, {**err.headers(), "Cache-Control": "no-store"}


def problem_response(request: Request[Any, Any, Any], err: errors.LivetokenError) -> Response[Any]:
    """Render `err` as a problem+json Response and count it as a rejection."""
    status, body, headers = render_problem(
        request.app.state.metrics, err, request.scope.get("state", {}).get("request_id")
    )
    return Response(content=body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def log_refusal(exc: errors.LivetokenError) -> None:
    """Log a refusal by volume class.

    401 and 429 are what a flood looks like: they are counted in metrics and logged at debug only, so an
    attacker cannot turn cheap requests into expensive log lines.
    """
    if isinstance(exc, errors.InvalidToken | errors.AppCheckInvalid | errors.RateLimited):
        if not log.is_enabled_for(logging.DEBUG):  # the default: a flood's refusals cost no log call at all
            return
        if isinstance(exc, errors.InvalidToken | errors.AppCheckInvalid):
            log.debug("request_rejected", outcome="rejected", reason=exc.slug, check=exc.internal_reason)
        else:
            log.debug("request_rejected", outcome="rejected", reason=exc.slug, status=exc.status)
    else:
        log.info("request_rejected", outcome="rejected", reason=exc.slug, status=exc.status)


def handle_livetoken(request: Request[Any, Any, Any], exc: errors.LivetokenError) -> Response[Any]:
    """Log (by volume class) and render one of our errors."""
    log_refusal(exc)
    return problem_response(request, exc)


def _handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return problem_response(request, _from_litestar(exc))


def log_unexpected(exc: Exception) -> errors.LivetokenError:
    """Log a bug by its type only (its text may carry upstream or library internals) and return the generic
    500 to answer with."""
    log.error("unhandled_error", outcome="error", error_type=type(exc).__name__)
    return errors.LivetokenError()


def _handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return problem_response(request, log_unexpected(exc))


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    errors.LivetokenError: handle_livetoken,
    HTTPException: _handle_http,
    Exception: _handle_unexpected,
}
