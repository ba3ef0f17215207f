"""create_app(settings) -> Litestar: the only place things are wired together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from litestar import Litestar
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Server
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from service.api.admin import AdminController
from service.api.cors import CorsMiddleware, CorsPolicy
from service.api.middleware import RequestContextMiddleware
from service.api.openapi_docs import token_operation_docs
from service.api.problems import EXCEPTION_HANDLERS
from service.api.routes import OpsController, ProfilesController
from service.api.token_route import TOKEN_PATH, token_route
from service.config import Settings
from service.issuing import open_runtime
from service.issuing.reload import ConfigReloader
from service.logging import get_logger
from service.metrics import Metrics
from service.tracing import NO_TRACING, Tracing

log = get_logger("livetoken")


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


def create_app(settings: Settings, metrics: Metrics | None = None, tracing: Tracing = NO_TRACING) -> Litestar:
    """Build the app for `settings`; connections open in the lifespan, not here.

    `tracing` (server start-up opens it from the `OTEL_*` environment; off by default) traces every request but
    the probes and scrapes, and is handed to each layer that makes spans.
    """
    metrics = metrics or Metrics(version=package_version())

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = await open_runtime(settings, metrics, tracing)
        app.state.runtime = runtime
        log.info(
            "service_started",
            dev_mode=settings.dev_mode,
            profiles=sorted(settings.profiles),
            rate_limiter=runtime.limiter.backend,
            upstream=settings.env.gemini_base_url or "google",
            tracing=tracing.describe(),
        )

        async def apply(new: Settings) -> None:
            await runtime.reconfigure(new)
            cors.update(new.cors_allow_origins, allow_local=new.dev_mode)

        reloader = ConfigReloader(
            lambda: runtime.settings,
            apply,
            metrics,
            also_on_sighup=runtime.key_file.reload if runtime.key_file is not None else None,
        )
        reloader.start()
        try:
            yield
        finally:
            runtime.draining = True
            await reloader.stop()
            await runtime.aclose()
            log.info("service_stopped")

    cors = CorsPolicy(settings.cors_allow_origins, allow_local=settings.dev_mode)
    config = openapi_config()
    routes: list[ControllerRouterHandler] = [token_route, ProfilesController, AdminController, OpsController]
    if settings.dev_mode and settings.demo_dir is not None:  # the browser example, same-origin (make demo)
        routes.append(create_static_files_router("/demo", [settings.demo_dir], html_mode=True, name="demo"))
    app = Litestar(
        route_handlers=routes,
        lifespan=[lifespan],
        # One stack for every route, POST /v1/tokens included: request context outermost, then CORS.
        middleware=[
            DefineMiddleware(RequestContextMiddleware, metrics=metrics, tracing=tracing),
            DefineMiddleware(CorsMiddleware, policy=cors, metrics=metrics),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        plugins=tracing.plugins(),  # on: the server span, outside the stack above (it wraps the router)
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
