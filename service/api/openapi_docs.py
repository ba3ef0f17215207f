"""OpenAPI details the framework cannot infer: the raw token route's operation and the headers of each answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Litestar, post
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIHeader as Header
from litestar.openapi.spec import OpenAPIResponse, Operation, PathItem, Schema
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import JSONBody

from service.api.schemas import PROBLEM_MEDIA_TYPE, Problem
from service.api.token_route import TOKEN_PATH
from service.issuing import TokenRequest, TokenResponse

_PROBLEMS = {
    400: "Malformed body, unknown field, wrong type, bad Idempotency-Key.",
    401: (
        "Missing or invalid JWT (`invalid-token`), or, for a profile with `require_app_check`, a missing or invalid "
        "Firebase App Check token (`app-check-invalid`): one generic answer each, never which check failed."
    ),
    403: "The caller's claims do not allow this profile or override.",
    404: "Unknown profile.",
    409: "A request with this Idempotency-Key is still in progress.",
    413: "Body too large.",
    415: "Body is not application/json.",
    422: "Idempotency-Key reused with a different body.",
    429: "Rate limited; see Retry-After and RateLimit.",
    502: "The Live API refused to issue the token.",
    503: (
        "The Live API or the rate limiter's Redis is unavailable, or this instance is at capacity "
        "(overloaded); see Retry-After."
    ),
    504: "The Live API did not answer in time.",
}

PROBLEM_RESPONSES: dict[int, ResponseSpec] = {
    status: ResponseSpec(
        data_container=Problem, description=text, media_type=PROBLEM_MEDIA_TYPE, generate_examples=False
    )
    for status, text in _PROBLEMS.items()
}

_STR = Schema(type=OpenAPIType.STRING)
_INT = Schema(type=OpenAPIType.INTEGER)
RATELIMIT_HEADERS = {
    "RateLimit-Policy": Header(
        schema=_STR, description='IETF httpapi draft: the limits applied, e.g. `"subject-60s";q=10;w=60`.'
    ),
    "RateLimit": Header(
        schema=_STR, description='IETF httpapi draft: the tightest limit now, e.g. `"subject-60s";r=3;t=20`.'
    ),
}
# `required`: the service always sends these on the answers they are attached to (the contract tests check it).
RETRY_AFTER = {"Retry-After": Header(schema=_INT, required=True, description="Seconds to wait before retrying.")}
WWW_AUTHENTICATE = {
    "WWW-Authenticate": Header(
        schema=_STR,
        required=True,
        description='`Bearer realm="livetoken", error="invalid_token"`; for `app-check-invalid`, '
        '`AppCheck realm="livetoken"`.',
    )
}
CACHE_CONTROL = {
    "Cache-Control": Header(
        schema=_STR, required=True, description="Always `no-store`: nothing this service answers may be cached."
    )
}

IDEMPOTENCY_KEY = OpenAPIParameter(
    name="Idempotency-Key",
    param_in="header",
    required=False,
    description="Retry-safe key: the same caller and key get the same token back, minted once.",
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=255, pattern="^[\\x21-\\x7e]+$"),
)


APP_CHECK = OpenAPIParameter(
    name="X-Firebase-AppCheck",
    param_in="header",
    required=False,
    description=(
        "A Firebase App Check token: required by profiles with `require_app_check`; alone (no Authorization) it "
        "admits anonymous callers to profiles marked `anonymous`."
    ),
    schema=Schema(type=OpenAPIType.STRING, max_length=4096),
)


def _add_headers(responses: dict[str, Any] | None, status: str, headers: dict[str, Header]) -> None:
    if responses and isinstance(resp := responses.get(status), OpenAPIResponse):
        resp.headers = {**(resp.headers or {}), **headers}


def _security(op: Operation) -> None:
    op.security = [{"bearerAuth": []}]
    for status in op.responses or {}:
        _add_headers(op.responses, status, CACHE_CONTROL)
    _add_headers(op.responses, "401", WWW_AUTHENTICATE)
    _add_headers(op.responses, "503", RETRY_AFTER)


@dataclass
class TokenOperation(Operation):
    """POST /v1/tokens: security and the headers of each answer."""

    def __post_init__(self) -> None:
        self.parameters = [IDEMPOTENCY_KEY, APP_CHECK]  # read by hand in the route, so declared here
        if self.request_body is not None:
            self.request_body.description = "Which profile to mint a token for."
        _security(self)
        _add_headers(self.responses, "201", RATELIMIT_HEADERS)
        _add_headers(self.responses, "429", {**RATELIMIT_HEADERS, **RETRY_AFTER})
        _add_headers(self.responses, "409", RETRY_AFTER)


@dataclass
class ProfilesOperation(Operation):
    """GET /v1/profiles: needs the caller's JWT."""

    def __post_init__(self) -> None:
        _security(self)


@post(
    TOKEN_PATH,
    status_code=201,
    summary="Issue an ephemeral Live API token",
    description=(
        "Verifies the caller's JWT, checks the profile against its claims, rate-limits, and mints a "
        "single-use, short-lived token whose Live session config is locked to the profile."
    ),
    operation_class=TokenOperation,
    responses=PROBLEM_RESPONSES,
    tags=["tokens"],
    name="issue_token",
)
async def issue_token(data: JSONBody[TokenRequest]) -> TokenResponse:
    """Never served: the signature of POST /v1/tokens, for the OpenAPI generator (token_route.py serves it)."""
    raise NotImplementedError


def token_operation_docs(config: OpenAPIConfig) -> tuple[PathItem, dict[str, Schema]]:
    """POST /v1/tokens as Litestar documents a framework route, generated from the flow's msgspec types.

    The route is raw ASGI, which the framework leaves out of the document; its signature above is run through
    Litestar's own generator instead, so it is described exactly like the framework routes. create_app adds the
    result to the served document.
    """
    doc = Litestar([issue_token], openapi_config=config, logging_config=None).openapi_schema
    paths = doc.paths or {}
    schemas = dict(doc.components.schemas or {})
    schemas["TokenRequest"].additional_properties = False  # msgspec's forbid_unknown_fields (not carried over)
    return paths[TOKEN_PATH], schemas
