"""HTTP routes other than POST /v1/tokens (token_route.py). Handlers stay thin: read, call the runtime, answer."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from service.api.openapi_docs import PROBLEM_RESPONSES, ProfilesOperation
from service.api.schemas import Health
from service.api.token_route import NO_STORE, ONE_AUTHORIZATION
from service.auth import CallerIdentity
from service.errors import MalformedRequest
from service.issuing import Generation, ProfileList, Readiness, Runtime, Usage
from service.logging import bind_request


async def authenticate(request: Request[Any, Any, State], gen: Generation) -> CallerIdentity:
    """The verified caller of a framework route (one Authorization header), bound to the request's log lines."""
    if len(request.headers.getall("authorization", [])) > 1:
        raise MalformedRequest(ONE_AUTHORIZATION)
    caller = await gen.verifier.verify(request.headers.get("authorization"))
    bind_request(subject=caller.subject, tenant=caller.tenant)
    return caller


class ProfilesController(Controller):
    """`/v1/profiles` and `/v1/usage`: what this caller may ask for, and how much it has left."""

    path = "/v1"
    tags = ["tokens"]

    @get(
        "/profiles",
        summary="Profiles the caller may use",
        operation_class=ProfilesOperation,
        responses={k: v for k, v in PROBLEM_RESPONSES.items() if k in (400, 401, 503)},
    )
    async def list_profiles(self, request: Request[Any, Any, State]) -> Response[ProfileList]:
        """List profiles allowed for the verified caller."""
        gen: Generation = request.app.state.runtime.current
        caller = await authenticate(request, gen)
        return Response(ProfileList(profiles=gen.issuer.profiles_for(caller)), headers=NO_STORE)

    @get(
        "/usage",
        summary="What the caller has left of its limits and budgets",
        description=(
            "Every rate limit and spend budget that counts this caller, with what is left and when it resets, and "
            "for each profile it may use how many more tokens the budgets allow (so a page can say "
            '"3 sessions left today"). Reads only: nothing is charged.'
        ),
        operation_class=ProfilesOperation,
        responses={k: v for k, v in PROBLEM_RESPONSES.items() if k in (400, 401, 503)},
    )
    async def usage(self, request: Request[Any, Any, State]) -> Response[Usage]:
        """The caller's usage."""
        gen: Generation = request.app.state.runtime.current
        caller = await authenticate(request, gen)
        return Response(await gen.issuer.usage(caller), headers=NO_STORE)


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

    @get(
        "/metrics",
        summary="Prometheus metrics",
        description=(
            "The Prometheus text format; OpenMetrics, whose latency histograms carry exemplars with the trace id "
            "of a traced request, when the Accept header asks for application/openmetrics-text."
        ),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )
    async def metrics(self, request: Request[Any, Any, State]) -> Response[bytes]:
        """The app's own registry, in the exposition format the scraper asks for."""
        body, media_type = request.app.state.metrics.exposition(request.headers.get("accept"))
        if media_type.startswith("text/"):  # Litestar appends the charset to text/* types itself
            media_type = media_type.replace("; charset=utf-8", "")
        return Response(body, media_type=media_type)
