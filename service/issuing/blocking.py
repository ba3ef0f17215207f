"""Blocking callers: whom a block names, putting it in place, lifting it, listing them; one audit line each.

The `livetoken block` commands and the admin endpoint (`/v1/admin/blocks`) both come through here.
"""

from __future__ import annotations

import time

from service.errors import MalformedRequest
from service.logging import get_logger
from service.ratelimit import subject_block, tenant_block
from service.ratelimit.blocks import MAX_BLOCK_SECONDS, BlockRecord, BlockStore

audit = get_logger("livetoken.audit")


class Blocking:
    """Blocks on one store, for the issuers this deployment trusts."""

    def __init__(self, store: BlockStore, issuers: list[str]) -> None:
        self._store = store
        self._issuers = issuers

    def _target(self, subject: str | None, issuer: str | None, tenant: str | None) -> tuple[str, BlockRecord]:
        """The block id and a record naming whom it blocks (expiry filled in by the caller)."""
        if (subject is None) == (tenant is None):
            raise MalformedRequest("Name exactly one of subject or tenant.")
        if tenant is not None:
            if not tenant or issuer is not None:
                raise MalformedRequest("A tenant block names a non-empty tenant and no issuer.")
            return tenant_block(tenant), BlockRecord(layer="tenant", who=tenant, created_at=0, expires_at=0)
        name = subject or ""
        if not name:
            raise MalformedRequest("The subject must not be empty.")
        if issuer is None:
            if len(self._issuers) != 1:
                raise MalformedRequest(f"Name the subject's issuer: one of {', '.join(self._issuers)}.")
            issuer = self._issuers[0]
        elif issuer not in self._issuers:
            raise MalformedRequest(f"Unknown issuer; configured: {', '.join(self._issuers)}.")
        block_id = subject_block(f"{issuer}\x1f{name}")
        return block_id, BlockRecord(layer="subject", who=name, issuer=issuer, created_at=0, expires_at=0)

    async def block(
        self,
        *,
        subject: str | None = None,
        issuer: str | None = None,
        tenant: str | None = None,
        seconds: float,
        reason: str = "",
        by: str,
    ) -> BlockRecord:
        """Block a caller or a tenant for `seconds` (every replica refuses it on its next request)."""
        if not 0 < seconds <= MAX_BLOCK_SECONDS:
            raise MalformedRequest("A block lasts more than 0 seconds and at most 366 days.")
        if len(reason) > 500:
            raise MalformedRequest("The reason is at most 500 characters.")
        block_id, blank = self._target(subject, issuer, tenant)
        now = time.time()
        record = BlockRecord(
            layer=blank.layer,
            who=blank.who,
            issuer=blank.issuer,
            reason=reason,
            created_at=now,
            expires_at=now + seconds,
            by=by,
        )
        await self._store.put(block_id, record)
        audit.info(
            "caller_blocked",
            layer=record.layer,
            who=record.who,
            issuer=record.issuer,
            seconds=seconds,
            reason=reason,
            by=by,
        )
        return record

    async def unblock(
        self, *, subject: str | None = None, issuer: str | None = None, tenant: str | None = None, by: str
    ) -> bool:
        """Lift a block; False when there was none."""
        block_id, blank = self._target(subject, issuer, tenant)
        lifted = await self._store.remove(block_id)
        audit.info("caller_unblocked", layer=blank.layer, who=blank.who, issuer=blank.issuer, lifted=lifted, by=by)
        return lifted

    async def all(self) -> list[BlockRecord]:
        """Every block in force."""
        return await self._store.all()
