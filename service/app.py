"""create_app(settings) -> Litestar: the only place things are wired together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import structlog
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Server

from service.api.middleware import RequestContextMiddleware
from service.api.problems import EXCEPTION_HANDLERS
from service.api.routes import OpsController, TokenController
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
    return Litestar(
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
