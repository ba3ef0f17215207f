"""Ask the livetoken service for a token, and explain every refusal clearly."""

from __future__ import annotations

from typing import Any

import httpx


class FetchError(Exception):
    """The service did not hand out a token; the message says why, in the server's words where it gave some."""


def fetch_token(service: str, jwt: str, profile: str, voice: str | None, timeout: float = 15.0) -> dict[str, Any]:
    """POST /v1/tokens and return the JSON answer."""
    body: dict[str, Any] = {"profile": profile}
    if voice:
        body["voice"] = voice
    url = service.rstrip("/") + "/v1/tokens"
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
    raise FetchError(_explain(resp))


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
