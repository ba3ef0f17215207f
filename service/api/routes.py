"""HTTP routes other than POST /v1/tokens (token_route.py). Handlers stay thin: read, call the runtime, answer."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from service.api.openapi_docs import PROBLEM_RESPONSES, ProfilesOperation
from service.api.schemas import Health
from service.api.token_route import NO_STORE, ONE_AUTHORIZATION
from service.errors import MalformedRequest
from service.issuing import ProfileList, Readiness, Runtime


class ProfilesController(Controller):
    """`/v1/profiles`: which profiles this caller may ask tokens for."""

    path = "/v1"
    tags = ["tokens"]

    @get(
        "/profiles",
        summary="Profiles the caller may use",
        operation_class=ProfilesOperation,
        responses={k: v for k, v in PROBLEM_RESPONSES.items() if k in (401, 503)},
    )
    async def list_profiles(self, request: Request[Any, Any, State]) -> Response[ProfileList]:
        """List profiles allowed for the verified caller."""
        rt: Runtime = request.app.state.runtime
        if len(request.headers.getall("authorization", [])) > 1:
            raise MalformedRequest(ONE_AUTHORIZATION)
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
