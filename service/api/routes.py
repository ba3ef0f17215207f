"""HTTP routes. Handlers stay thin: read, call the runtime's objects, answer."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from service.api.openapi_docs import PROBLEM_RESPONSES, ProfilesOperation, TokenOperation
from service.api.problems import handle_livetoken
from service.api.schemas import Health, ProfileList, Readiness, TokenResponse
from service.api.token_endpoint import NO_STORE, answer_token_request
from service.errors import LivetokenError
from service.runtime import Runtime


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
        """Issue one token for the verified caller (token_endpoint.py holds the steps; most requests reach
        them without the framework)."""
        try:
            result = await answer_token_request(request.app.state.runtime, request.headers.get, request.stream())
        except LivetokenError as err:
            # Rendered here rather than re-raised: the framework's exception path costs more than the refusal.
            return handle_livetoken(request, err)
        return Response(
            content=result.body,  # type: ignore[arg-type]  # pre-encoded TokenResponse (also what replays send)
            status_code=result.status,
            media_type="application/json",
            headers=result.headers,
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
