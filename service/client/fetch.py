"""Ask the livetoken service for a token, and explain every refusal clearly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


class FetchError(Exception):
    """The service did not hand out a token; the message says why, in the server's words where it gave some."""


RETRY_STATUSES = {429, 503}  # rate limited, overloaded or briefly unavailable: Retry-After says when to come back
MAX_RETRY_WAIT = 30.0  # a longer Retry-After (a spent daily budget) is reported, not waited for
MAX_TRIES = 4


def fetch_token(  # noqa: PLR0917 - what a token request is made of
    service: str,
    jwt: str,
    profile: str,
    voice: str | None,
    timeout: float = 15.0,
    on_wait: Callable[[str, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """POST /v1/tokens and return the JSON answer. A 429 or 503 whose Retry-After is at most 30 s is tried again
    after it (up to four tries), `on_wait(why, seconds)` told before each wait; anything else is a FetchError."""
    body: dict[str, Any] = {"profile": profile}
    if voice:
        body["voice"] = voice
    url = service.rstrip("/") + "/v1/tokens"
    for attempt in range(1, MAX_TRIES + 1):
        try:
            resp = httpx.post(url, json=body, headers={"Authorization": f"Bearer {jwt}"}, timeout=timeout)
        except httpx.ConnectError:
            raise FetchError(f"cannot reach the token service at {service} (connection refused?)") from None
        except httpx.TimeoutException:
            raise FetchError(f"the token service at {service} did not answer within {timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"request to the token service failed: {type(exc).__name__}") from None
        if resp.status_code == 201:
            data: dict[str, Any] = resp.json()
            return data
        wait = _retry_after(resp)
        if resp.status_code not in RETRY_STATUSES or wait is None or wait > MAX_RETRY_WAIT or attempt == MAX_TRIES:
            raise FetchError(_explain(resp))
        if on_wait is not None:
            on_wait(_explain(resp), wait)
        sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _retry_after(resp: httpx.Response) -> float | None:
    """Retry-After in seconds (livetoken sends whole seconds), or None when absent or not a number."""
    value = resp.headers.get("retry-after", "")
    return float(value) if value.isascii() and value.isdigit() else None


def _explain(resp: httpx.Response) -> str:
    try:
        problem = resp.json()
        detail = problem.get("detail") or problem.get("title") or ""
    except ValueError:
        detail = resp.text[:200]
    hints = {
        401: "the JWT was refused (expired, wrong issuer/audience, or not a JWT)",
        403: "your JWT does not allow this profile",
        404: "no such profile (GET /v1/profiles lists yours)",
        429: "rate limited",
    }
    line = f"token request refused: HTTP {resp.status_code}"
    if resp.status_code in hints:
        line += f" — {hints[resp.status_code]}"
    if detail:
        line += f": {detail}"
    if retry := resp.headers.get("retry-after"):
        line += f" (retry after {retry}s)"
    return line
