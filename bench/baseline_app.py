"""The yardstick: a bare Litestar JSON POST endpoint, served the same way as the service."""

from __future__ import annotations

import msgspec
from litestar import Litestar, post


class Echo(msgspec.Struct):
    """The body the baseline endpoint reads and answers."""

    profile: str


@post("/echo", status_code=201)
async def echo(data: Echo) -> Echo:
    """Decode a small JSON body and send it back."""
    return data


app = Litestar(route_handlers=[echo], openapi_config=None, logging_config=None)
