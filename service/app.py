"""create_app(settings) -> Litestar: the only place things are wired together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import structlog
from litestar import Litestar
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Server
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from service.api.cors import CorsMiddleware, CorsPolicy
from service.api.middleware import RequestContextMiddleware
from service.api.openapi_docs import token_operation_docs
from service.api.problems import EXCEPTION_HANDLERS
from service.api.routes import OpsController, ProfilesController
from service.api.token_route import TOKEN_PATH, token_route
from service.config import Settings
from service.issuing import open_runtime
from service.metrics import Metrics

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

    cors = CorsPolicy(settings.cors_allow_origins, allow_local=settings.dev_mode)
    config = openapi_config()
    routes: list[ControllerRouterHandler] = [token_route, ProfilesController, OpsController]
    if settings.dev_mode and settings.demo_dir is not None:  # the browser example, same-origin (make demo)
        routes.append(create_static_files_router("/demo", [settings.demo_dir], html_mode=True, name="demo"))
    app = Litestar(
        route_handlers=routes,
        lifespan=[lifespan],
        # One stack for every route, POST /v1/tokens included: request context outermost, then CORS.
        middleware=[
            DefineMiddleware(RequestContextMiddleware, metrics=metrics),
            DefineMiddleware(CorsMiddleware, policy=cors, metrics=metrics),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=config,
        state=State({"metrics": metrics, "settings": settings}),
        debug=False,
        logging_config=None,
    )
    # The raw token route is documented from the flow's types, in the same document the framework serves.
    openapi = app.openapi_schema  # built once and kept by the framework: what /docs serves
    path_item, schemas = token_operation_docs(OpenAPIConfig(title=config.title, version=config.version))
    openapi.paths = {**(openapi.paths or {}), TOKEN_PATH: path_item}
    openapi.components.schemas = {**schemas, **(openapi.components.schemas or {})}
    return app
