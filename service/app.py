"""create_app(settings) -> Litestar: the only place things are wired together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import structlog
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Server
from litestar.types import ASGIApp, Receive, Scope, Send

from service.api.middleware import RequestContextMiddleware
from service.api.problems import EXCEPTION_HANDLERS
from service.api.routes import OpsController, TokenController
from service.api.token_endpoint import TOKEN_PATH, token_endpoint
from service.config import Settings
from service.metrics import Metrics
from service.runtime import open_runtime

log = structlog.get_logger("livetoken")


def package_version() -> str:
    """The installed livetoken version."""
    try:
        return version("livetoken")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0.0.0"


def openapi_config() -> OpenAPIConfig:
    """The OpenAPI document's metadata; `openapi.yaml` at the repo root must equal what the app serves."""
    return OpenAPIConfig(
        title="livetoken",
        version=package_version(),
        description=(
            "Issues single-use, short-lived, locked-down Gemini Live API ephemeral tokens to callers "
            "authenticated with a JWT. Errors are RFC 9457 problem+json."
        ),
        path="/docs",
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger"), YamlRenderPlugin()],
        servers=[Server(url="/")],
        components=Components(
            security_schemes={
                "bearerAuth": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
            }
        ),
        use_handler_docstrings=False,
        create_examples=False,
    )


class LivetokenApp(Litestar):
    """The Litestar app, with POST /v1/tokens answered before the framework's routing (see token_endpoint.py).

    Requests that carry an Origin header while CORS is configured still go through the framework, whose CORS
    middleware answers them; so do all other paths and methods.
    """

    fast_token: ASGIApp | None = None
    cors: bool = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        if (
            scope["type"] == ScopeType.HTTP
            and scope["path"] == TOKEN_PATH
            and scope["method"] == "POST"
            and self.fast_token is not None
            and not (self.cors and any(name == b"origin" for name, _ in scope["headers"]))
        ):
            scope["path_template"] = TOKEN_PATH  # the metrics' route label, as the framework sets it
            await self.fast_token(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, metrics: Metrics | None = None) -> Litestar:
    """Build the app for `settings`; connections open in the lifespan, not here."""
    metrics = metrics or Metrics(version=package_version())

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = await open_runtime(settings, metrics)
        app.state.runtime = runtime
        log.info(
            "service_started",
            dev_mode=settings.dev_mode,
            profiles=sorted(settings.profiles),
            rate_limiter=runtime.limiter.backend,
            upstream=settings.env.gemini_base_url or "google",
        )
        try:
            yield
        finally:
            runtime.draining = True
            await runtime.aclose()
            log.info("service_stopped")

    cors = settings.file.server.cors_allow_origins
    app = LivetokenApp(
        route_handlers=[TokenController, OpsController],
        lifespan=[lifespan],
        middleware=[DefineMiddleware(RequestContextMiddleware, metrics=metrics)],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi_config(),
        cors_config=CORSConfig(
            allow_origins=cors,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["RateLimit", "RateLimit-Policy", "Retry-After", "X-Request-ID"],
        )
        if cors
        else None,
        request_max_body_size=settings.file.server.max_body_bytes,
        state=State({"metrics": metrics, "settings": settings}),
        debug=False,
        logging_config=None,
    )
    app.fast_token = RequestContextMiddleware(token_endpoint(lambda: app.state.runtime), metrics)
    app.cors = bool(cors)
    return app
