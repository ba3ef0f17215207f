"""The token route's body deadline: no timer for a body that is already there, the deadline for one that is
not, and a cancellation from outside (shutdown, a caller gone) left a cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from service.api.token_route import BodyDeadline, read_json_body
from service.errors import MalformedRequest

HEADERS = {"content-type": "application/json", "content-length": "19"}


async def _chunks(*parts: bytes, stall: float = 0.0) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    if stall:
        await asyncio.sleep(stall)
        yield b"never read"


async def test_a_body_already_there_is_read_without_arming_a_timer() -> None:
    """The read never waits, so the arming callback is cancelled unrun: no timer was ever set."""
    deadline = BodyDeadline(0.05)
    with deadline:
        parts = [chunk async for chunk in _chunks(b'{"profile":', b'"voice"}')]
    assert parts == [b'{"profile":', b'"voice"}']
    assert deadline._timer is None
    await asyncio.sleep(0.1)  # and nothing fires later


async def test_a_body_that_stalls_is_refused_at_its_deadline() -> None:
    """Ten bytes, then nothing: MalformedRequest "arrived too slowly" after the read timeout, not the stall."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(MalformedRequest) as refused:
        await read_json_body(HEADERS.get, _chunks(b'{"profile"', stall=5.0), 1024, 0.2)
    assert refused.value.detail == "The request body arrived too slowly."
    assert 0.2 <= loop.time() - began < 1.0


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    """The server cancels the request (shutdown) while the body is awaited: CancelledError, not a 400."""
    task = asyncio.create_task(read_json_body(HEADERS.get, _chunks(b"{", stall=5.0), 1024, 2.0))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
