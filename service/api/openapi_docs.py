"""OpenAPI details the framework cannot infer: the hand-read request body and the headers of each answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIHeader as Header,
)
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType

from service.api.schemas import Problem

PROBLEM_MEDIA_TYPE = "application/problem+json"

_PROBLEMS = {
    400: "Malformed body, unknown field, wrong type, bad Idempotency-Key.",
    401: "Missing or invalid JWT (one generic answer, never which check failed).",
    403: "The caller's claims do not allow this profile or override.",
    404: "Unknown profile.",
    409: "A request with this Idempotency-Key is still in progress.",
    413: "Body too large.",
    415: "Body is not application/json.",
    422: "Idempotency-Key reused with a different body.",
    429: "Rate limited; see Retry-After and RateLimit.",
    502: "The Live API refused to issue the token.",
    503: "The Live API, or the rate limiter's Redis, is unavailable; see Retry-After.",
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
RETRY_AFTER = {"Retry-After": Header(schema=_INT, description="Seconds to wait before retrying.")}
WWW_AUTHENTICATE = {
    "WWW-Authenticate": Header(schema=_STR, description='`Bearer realm="livetoken", error="invalid_token"`.')
}
CACHE_CONTROL = {"Cache-Control": Header(schema=_STR, description="Always `no-store`: tokens must not be cached.")}

TOKEN_REQUEST_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["profile"],
    additional_properties=False,
    properties={
        "profile": Schema(
            type=OpenAPIType.STRING,
            min_length=1,
            max_length=63,
            pattern="^[a-z0-9][a-z0-9_-]*$",
            description="Name of a configured profile the caller may use.",
        ),
        "voice": Schema(
            one_of=[
                Schema(type=OpenAPIType.STRING, min_length=1, max_length=32, pattern="^[A-Za-z]+$"),
                Schema(type=OpenAPIType.NULL),
            ],
            description="Voice override; only voices the profile lists in allowed_voices.",
        ),
    },
)


IDEMPOTENCY_KEY = Parameter(
    name="Idempotency-Key",
    param_in="header",
    required=False,
    description="Retry-safe key: the same caller and key get the same token back, minted once.",
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=255, pattern="^[\\x21-\\x7e]+$"),
)


def _add_headers(responses: dict[str, Any] | None, status: str, headers: dict[str, Header]) -> None:
    if responses and isinstance(resp := responses.get(status), OpenAPIResponse):
        resp.headers = {**(resp.headers or {}), **headers}


def _security(op: Operation) -> None:
    op.security = [{"bearerAuth": []}]
    _add_headers(op.responses, "401", WWW_AUTHENTICATE)
    _add_headers(op.responses, "503", RETRY_AFTER)


@dataclass
class TokenOperation(Operation):
    """POST /v1/tokens: the body is read by hand (for cheap, explicit refusals), so it is declared here."""

    def __post_init__(self) -> None:
        self.parameters = [IDEMPOTENCY_KEY]
        self.request_body = RequestBody(
            required=True,
            content={"application/json": OpenAPIMediaType(schema=TOKEN_REQUEST_SCHEMA)},
            description="Which profile to mint a token for.",
        )
        _security(self)
        _add_headers(self.responses, "201", {**RATELIMIT_HEADERS, **CACHE_CONTROL})
        _add_headers(self.responses, "429", {**RATELIMIT_HEADERS, **RETRY_AFTER})
        _add_headers(self.responses, "409", RETRY_AFTER)


@dataclass
class ProfilesOperation(Operation):
    """GET /v1/profiles: needs the caller's JWT."""

    def __post_init__(self) -> None:
        _security(self)
