"""HTTP routes. Handlers stay thin: read, call the runtime's objects, answer."""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any

import msgspec
import structlog
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from service.api.openapi_docs import PROBLEM_RESPONSES, ProfilesOperation, TokenOperation
from service.api.problems import handle_livetoken
from service.api.schemas import Health, ProfileList, Readiness, TokenRequest, TokenResponse
from service.errors import LivetokenError, MalformedRequest, PayloadTooLarge, UnsupportedMediaType
from service.runtime import Runtime

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
NO_STORE = {"Cache-Control": "no-store"}
log = structlog.get_logger("livetoken.http")


async def read_json_body(request: Request[Any, Any, Any], max_bytes: int, read_timeout: float) -> bytes:
    """The raw body, refusing wrong media types, oversize and slow uploads cheaply."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedRequest("Invalid Content-Length header.")
        if int(declared) > max_bytes:
            raise PayloadTooLarge
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(read_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge
                chunks.append(chunk)
    except TimeoutError:
        raise MalformedRequest("The request body arrived too slowly.") from None
    return b"".join(chunks)


def decode_token_request(raw: bytes) -> TokenRequest:
    """Parse and validate the body; the error names the field, never echoes its value."""
    try:
        return msgspec.json.decode(raw, type=TokenRequest)
    except msgspec.ValidationError as exc:
        raise MalformedRequest(f"Invalid request body: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise MalformedRequest("The request body is not valid JSON.") from None


class TokenController(Controller):
    """`/v1`: token issuing and profile listing."""

    path = "/v1"
    tags = ["tokens"]

    @post(
        "/tokens",
        status_code=201,
        summary="Issue an ephemeral Live API token",
        description=(
            "Verifies the caller's JWT, checks the profile against its claims, rate-limits, and mints a "
            "single-use, short-lived token whose Live session config is locked to the profile."
        ),
        operation_class=TokenOperation,
        responses=PROBLEM_RESPONSES,
    )
    async def issue_token(self, request: Request[Any, Any, State]) -> Response[TokenResponse]:
        """Issue one token for the verified caller."""
        try:
            return await self._issue(request)
        except LivetokenError as err:
            # Rendered here rather than re-raised: the framework's exception path costs more than the refusal.
            return handle_livetoken(request, err)

    async def _issue(self, request: Request[Any, Any, State]) -> Response[TokenResponse]:
        rt: Runtime = request.app.state.runtime
        if rt.draining:
            rt.refuse_while_draining()
        headers = request.headers
        caller = await rt.verifier.verify(headers.get("authorization"))
        structlog.contextvars.bind_contextvars(subject=caller.subject, tenant=caller.tenant)
        # Read here rather than declared as a handler parameter: the framework's parameter parsing costs more
        # than this check, and a caller must be authenticated before anything else about the request is judged.
        idempotency_key = headers.get("idempotency-key")
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise MalformedRequest("Idempotency-Key must be 1-255 visible ASCII characters.")
        server = rt.settings.file.server
        raw = await read_json_body(request, server.max_body_bytes, float(server.request_timeout))
        body = decode_token_request(raw)
        request_hash = hashlib.sha256(msgspec.json.encode(body)).hexdigest()[:32]
        result = await rt.issuer.issue(caller, body, idempotency_key, request_hash)
        return Response(
            content=result.body,  # type: ignore[arg-type]  # pre-encoded TokenResponse (also what replays send)
            status_code=result.status,
            media_type="application/json",
            headers={**result.headers, **NO_STORE},
        )

    @get(
        "/profiles",
        summary="Profiles the caller may use",
        operation_class=ProfilesOperation,
        responses={k: v for k, v in PROBLEM_RESPONSES.items() if k in (401, 503)},
    )
    async def list_profiles(self, request: Request[Any, Any, State]) -> Response[ProfileList]:
        """List profiles allowed for the verified caller."""
        rt: Runtime = request.app.state.runtime
        caller = await rt.verifier.verify(request.headers.get("authorization"))
        structlog.contextvars.bind_contextvars(subject=caller.subject, tenant=caller.tenant)
        return Response(ProfileList(profiles=rt.issuer.profiles_for(caller)), headers=NO_STORE)


class OpsController(Controller):
    """Health, readiness and metrics for operators."""

    tags = ["operations"]
    include_in_schema = True

    @get("/healthz", summary="Liveness (no dependencies)")
    async def healthz(self) -> Health:
        """The process answers."""
        return Health(status="ok")

    @get(
        "/readyz",
        summary="Readiness (config, Redis or fail mode, upstream circuit)",
        responses={503: ResponseSpec(data_container=Readiness, description="Not ready: the body says why.")},
    )
    async def readyz(self, request: Request[Any, Any, State]) -> Response[Readiness]:
        """Whether this instance should receive traffic now."""
        rt: Runtime = request.app.state.runtime
        ready = await rt.readiness()
        return Response(ready, status_code=200 if ready.status == "ready" else 503, headers=NO_STORE)

    @get("/metrics", summary="Prometheus metrics", media_type="text/plain; version=0.0.4; charset=utf-8")
    async def metrics(self, request: Request[Any, Any, State]) -> Response[bytes]:
        """Prometheus text exposition of the app's own registry."""
        return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
