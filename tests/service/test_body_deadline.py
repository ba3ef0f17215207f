"""The token route's body deadline: no timer for a body that is already there, the deadline for one that is
not, and a cancellation from outside (shutdown, a caller gone) left a cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar.types import Receive

from service.api.token_route import BodyDeadline, ClientDisconnected, read_json_body
from service.errors import MalformedRequest

HEADERS = {"content-type": "application/json", "content-length": "19"}


def _receive(*parts: bytes, stall: float = 0.0) -> Receive:
    """An ASGI receive handing out `parts` as body messages, the last with more_body unless a stall follows
    (which then waits `stall` seconds)."""
    messages = [{"type": "http.request", "body": part, "more_body": True} for part in parts]
    if not stall:
        messages[-1]["more_body"] = False

    async def receive() -> Any:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(stall)
        return {"type": "http.request", "body": b"never read", "more_body": False}

    return receive


async def test_a_body_already_there_is_read_without_arming_a_timer() -> None:
    """The read never waits, so the arming callback is cancelled unrun: no timer was ever set."""
    deadline = BodyDeadline(0.05)
    receive = _receive(b'{"profile":', b'"voice"}')
    with deadline:
        messages = [await receive(), await receive()]
    assert [m.get("body") for m in messages] == [b'{"profile":', b'"voice"}']
    assert deadline._timer is None
    await asyncio.sleep(0.1)  # and nothing fires later


async def test_a_body_that_stalls_is_refused_at_its_deadline() -> None:
    """Ten bytes, then nothing: MalformedRequest "arrived too slowly" after the read timeout, not the stall."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(MalformedRequest) as refused:
        await read_json_body(HEADERS.get, _receive(b'{"profile"', stall=5.0), 1024, 0.2)
    assert refused.value.detail == "The request body arrived too slowly."
    assert 0.2 <= loop.time() - began < 1.0


async def test_a_body_in_parts_is_read_whole_and_a_disconnect_ends_the_request() -> None:
    """Three body messages make one body; a caller gone mid-body is ClientDisconnected (nobody to answer)."""
    assert await read_json_body(HEADERS.get, _receive(b'{"pro', b'file":"vo', b'ice"}'), 1024, 1.0) == (
        b'{"profile":"voice"}'
    )
    parts = [{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}]

    async def receive() -> Any:
        return parts.pop(0)

    with pytest.raises(ClientDisconnected):
        await read_json_body(HEADERS.get, receive, 1024, 1.0)


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    """The server cancels the request (shutdown) while the body is awaited: CancelledError, not a 400."""
    task = asyncio.create_task(read_json_body(HEADERS.get, _receive(b"{", stall=5.0), 1024, 2.0))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
