"""`POST /{v1alpha,v1beta,v1}/auth_tokens`: Google's defaults, limits and error shapes."""

from __future__ import annotations

import asyncio
import json
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Request, Response, post
from litestar.datastructures import State

from service.emulator.store import EmulatorState, fingerprint
from service.logging import get_logger

MAX_TTL = timedelta(hours=20)
log = get_logger("livetoken.emulator")

_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class DropConnection(Exception):
    """Fault injection: reset the connection without an answer."""


def google_error(code: int, message: str, details: list[dict[str, Any]] | None = None) -> Response[Any]:
    """Google's error body: {"error": {"code", "message", "status"}}, with `details` when Google sends them."""
    error: dict[str, Any] = {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN")}
    if details:
        error["details"] = details
    return Response({"error": error}, status_code=code, media_type="application/json")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _field(body: dict[str, Any], name: str) -> Any:
    """Top-level fields arrive camelCase from the SDK; accept snake_case too."""
    return body.get(_camel(name), body.get(name))


def _time(body: dict[str, Any], name: str, default: datetime, now: datetime) -> datetime:
    raw = _field(body, name)
    if raw is None:
        return default
    if not isinstance(raw, str) or not re.search(r"(Z|[+-]\d\d:\d\d)$", raw):
        # Proto JSON timestamps need a zone; a naive value is what the SDK sends for a naive datetime.
        raise ValueError(f"Invalid value at '{name}' (type.googleapis.com/google.protobuf.Timestamp), \"{raw}\"")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"Invalid value at '{name}', \"{raw}\"") from None
    if value <= now:
        raise ValueError(f"{name} must be in the future.")
    if value - now >= MAX_TTL:
        raise ValueError(f"{name} must be less than 20 hours in the future.")
    return value


_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id a W3C `traceparent` carries (the caller's trace, as Google would see it), if well formed."""
    found = _TRACEPARENT.match(traceparent or "")
    return found.group(1) if found and found.group(1) != "0" * 32 else None


def set_field_paths(setup: dict[str, Any]) -> set[str]:
    """The paths the SDK lists for a `lock_additional_fields=[]` mask: top-level keys, generationConfig's children."""
    paths: set[str] = set()
    for key, value in setup.items():
        if key in ("generationConfig", "systemInstruction") and isinstance(value, dict):
            paths |= {f"{key}.{sub}" for sub in value}
        else:
            paths.add(key)
    return paths


async def _apply_faults(state: EmulatorState) -> Response[Any] | None:
    faults = state.faults
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if faults.fail_next:
        what = faults.fail_next.popleft()
        if what == "drop":
            raise DropConnection
        return google_error(int(what), "Injected failure (emulator fault injection).")
    if faults.drop_rate and random.random() < faults.drop_rate:  # noqa: S311 - fault injection, not crypto
        raise DropConnection
    for code, rate in faults.error_rates.items():
        if random.random() < rate:  # noqa: S311
            return google_error(code, "Injected failure (emulator fault injection).")
    return None


def _abort_connection(request: Request[Any, Any, State]) -> None:
    """Reset the TCP connection with no answer (uvicorn's receive is bound to the cycle holding the transport)."""
    cycle = getattr(request.receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is not None:
        transport.abort()


@post("/{version:str}/auth_tokens", status_code=200)
async def create_auth_token(request: Request[Any, Any, State], version: str) -> Response[Any]:  # noqa: PLR0911 - one error answer per check, as Google gives them
    """Mint an ephemeral token the way Google does."""
    state: EmulatorState = request.app.state.emulator
    if version not in ("v1alpha", "v1beta", "v1"):
        return google_error(404, f"Method not found: {version}/auth_tokens.")
    raw = await request.body()
    headers = {k: ("<redacted>" if k.lower() == "x-goog-api-key" else v) for k, v in request.headers.items()}
    traceparent = request.headers.get("traceparent")
    entry: dict[str, Any] = {
        "path": request.url.path,
        "headers": headers,
        "raw_body": raw.decode("utf-8", "replace"),
        "traceparent": traceparent,
        "trace_id": trace_id_of(traceparent),
    }
    state.requests.append(entry)
    state.request_count += 1
    key = request.headers.get("x-goog-api-key")
    if not key:
        return google_error(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        )
    entry["key"] = fingerprint(key)
    refused = state.keys.check(key, version)
    if refused is not None:
        return google_error(refused.code, refused.message, refused.details)
    try:
        injected = await _apply_faults(state)
    except DropConnection:
        _abort_connection(request)
        return google_error(503, "connection dropped")
    if injected is not None:
        return injected
    try:
        body = json.loads(raw) if raw.strip() else {}
        if not isinstance(body, dict):
            raise ValueError("Invalid JSON payload received. Expected an object.")
        entry["body"] = body
        now = datetime.now(UTC)
        expire = _time(body, "expire_time", now + timedelta(minutes=30), now)
        new_session = _time(body, "new_session_expire_time", now + timedelta(seconds=60), now)
        if new_session > expire:
            raise ValueError("new_session_expire_time must not be after expire_time.")
        uses = _field(body, "uses")
        uses = 1 if uses is None else uses
        if not isinstance(uses, int) or isinstance(uses, bool) or uses < 0:
            raise ValueError("uses must be a non-negative integer.")
        setup = _field(body, "bidi_generate_content_setup")
        if setup is not None and not isinstance(setup, dict):
            raise ValueError("Invalid value at 'bidi_generate_content_setup'.")
        mask_raw = _field(body, "field_mask")
        mask = [p for p in mask_raw.split(",") if p] if isinstance(mask_raw, str) else None
        if mask is not None and setup is not None and set(mask) <= set_field_paths(setup):
            # What `lock_additional_fields=[]` produces; the real API answers exactly this.
            raise ValueError("field_mask is invalid")
    except ValueError as exc:
        return google_error(400, str(exc))
    record = state.new_token(
        uses=uses,
        uses_remaining=uses,
        expire_time=expire,
        new_session_expire_time=new_session,
        setup=setup,
        field_mask=mask,
    )
    state.keys.minted(key)
    log.info("emulator_token_minted", token_fingerprint=fingerprint(record.name), uses=uses, locked=mask is None)
    return Response({"name": record.name}, status_code=200, media_type="application/json")
