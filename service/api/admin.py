"""`/v1/admin/blocks`: operators block and unblock callers over HTTP, guarded by `[admin]` (issuer and scope)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.params import FromQuery, JSONBody

from service.api.openapi_docs import PROBLEM_RESPONSES, ProfilesOperation
from service.api.routes import authenticate
from service.api.token_route import NO_STORE
from service.auth import CallerIdentity, satisfies
from service.config import Duration
from service.errors import AdminForbidden, MalformedRequest, NotFound, RateLimiterUnavailable
from service.issuing import Generation, Runtime
from service.ratelimit.blocks import BlockRecord, BlockStoreUnavailableError


class BlockRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Block one caller (`subject`, with its `issuer` when several are configured) or one `tenant`."""

    subject: str | None = None
    issuer: str | None = None
    tenant: str | None = None
    duration: str = "1h"
    reason: str = ""


class BlockList(msgspec.Struct, frozen=True):
    """The blocks in force, soonest to expire first."""

    blocks: list[BlockRecord]


@asynccontextmanager
async def _store_errors() -> AsyncIterator[None]:
    """Redis down: the same fast 503 the limiter gives, not a 500."""
    try:
        yield
    except BlockStoreUnavailableError:
        raise RateLimiterUnavailable(retry_after=1.0) from None


async def _operator(request: Request[Any, Any, State]) -> tuple[Runtime, Generation, CallerIdentity]:
    """The verified operator, or a refusal: 404 when `[admin]` is not configured, 403 without its claims."""
    rt: Runtime = request.app.state.runtime
    gen = rt.current
    admin = gen.settings.file.admin
    if admin is None:
        raise NotFound
    caller = await authenticate(request, gen)
    if (admin.issuers and caller.issuer not in admin.issuers) or not satisfies(admin.require, caller):
        raise AdminForbidden
    return rt, gen, caller


_RESPONSES = {k: v for k, v in PROBLEM_RESPONSES.items() if k in (400, 401, 403, 404, 503)}


class AdminController(Controller):
    """Operators' controls (DESIGN.md §2): the same blocks as `livetoken block`."""

    path = "/v1/admin/blocks"
    tags = ["admin"]

    @get("/", summary="Blocks in force", operation_class=ProfilesOperation, responses=_RESPONSES)
    async def list_blocks(self, request: Request[Any, Any, State]) -> Response[BlockList]:
        """Every block in force."""
        _, gen, _ = await _operator(request)
        async with _store_errors():
            return Response(BlockList(await gen.blocking.all()), headers=NO_STORE)

    @post(
        "/",
        status_code=201,
        summary="Block a caller or a tenant",
        description="Every replica refuses the caller (403 caller-blocked) from its next request until the block ends.",
        operation_class=ProfilesOperation,
        responses=_RESPONSES,
    )
    async def block(self, request: Request[Any, Any, State], data: JSONBody[BlockRequest]) -> Response[BlockRecord]:
        """Put a block in place."""
        rt, gen, operator = await _operator(request)
        try:
            seconds = float(Duration.parse(data.duration))
        except ValueError:
            raise MalformedRequest('duration: expected a duration such as "30m", "1h" or "7d".') from None
        async with _store_errors():
            record = await gen.blocking.block(
                subject=data.subject,
                issuer=data.issuer,
                tenant=data.tenant,
                seconds=seconds,
                reason=data.reason,
                by=f"admin:{operator.subject}",
            )
        rt.metrics.inc(rt.metrics.block_changes, "block")
        return Response(record, status_code=201, headers=NO_STORE)

    @delete("/", status_code=204, summary="Lift a block", operation_class=ProfilesOperation, responses=_RESPONSES)
    async def unblock(
        self,
        request: Request[Any, Any, State],
        subject: FromQuery[str | None] = None,
        issuer: FromQuery[str | None] = None,
        tenant: FromQuery[str | None] = None,
    ) -> None:
        """Lift a block (404 when there was none)."""
        rt, gen, operator = await _operator(request)
        async with _store_errors():
            lifted = await gen.blocking.unblock(
                subject=subject, issuer=issuer, tenant=tenant, by=f"admin:{operator.subject}"
            )
        if not lifted:
            raise NotFound("No such block.")
        rt.metrics.inc(rt.metrics.block_changes, "unblock")
