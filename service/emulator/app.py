"""The emulator's ASGI app: Google's two endpoints plus `/_emulator/` introspection."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.types import ASGIApp, Receive, Scope, Send

from service.emulator.admin import AdminController
from service.emulator.live import live_socket
from service.emulator.rest import create_auth_token
from service.emulator.store import EmulatorState


class _Normalize:
    """Accept `//ws/…` and `//v1alpha/…` (what the SDK sends for a base_url with a trailing slash)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"].startswith("//"):
            scope = {  # type: ignore[assignment]  # the same scope with its path normalised
                **scope,
                "path": "/" + scope["path"].lstrip("/"),
                "raw_path": b"/" + scope["raw_path"].lstrip(b"/"),
            }
        await self.app(scope, receive, send)


def create_emulator_app(state: EmulatorState) -> Any:
    """Build the emulator app around `state`."""
    app = Litestar(
        route_handlers=[create_auth_token, live_socket, AdminController],
        state=State({"emulator": state}),
        openapi_config=None,
        logging_config=None,
        debug=False,
        exception_handlers={},
    )
    return _Normalize(app)
