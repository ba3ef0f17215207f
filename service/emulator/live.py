"""The Live WebSocket: token checks, the locked setup, and a deterministic conversation.

Errors reach the SDK only as close frames (code + short reason); a JSON error frame would crash it.
"""

from __future__ import annotations

import copy
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from service.emulator import lifetime, setup_rules
from service.emulator.session import LiveSession
from service.emulator.store import EmulatorState, SessionLineage, TokenRecord, fingerprint
from service.logging import get_logger

log = get_logger("livetoken.emulator")
RPC_PREFIX = "google.ai.generativelanguage."
POLICY = 1008


def _credential(socket: WebSocket[Any, Any, Any]) -> str | None:
    """The Python SDK sends `Authorization: Token …` and `x-goog-api-key`; the JS SDK can set no headers in a
    browser, so it puts the credential in the URL: `?access_token=auth_tokens/…` or `?key=API_KEY`."""
    auth = socket.headers.get("authorization", "")
    if auth.lower().startswith("token "):
        return auth[6:].strip()
    query = socket.query_params
    return query.get("access_token") or query.get("key") or socket.headers.get("x-goog-api-key")


def _apply_lock(token: TokenRecord, client_setup: dict[str, Any]) -> dict[str, Any]:
    """The setup the session really gets: the token's locked fields win over the client's."""
    if token.setup is None:
        return copy.deepcopy(client_setup)
    if token.field_mask is None:
        effective = copy.deepcopy(token.setup)
    else:
        effective = copy.deepcopy(client_setup)
        for path in token.field_mask:
            top, _, sub = path.partition(".")
            key = model_key(top)
            if key not in token.setup:
                continue
            if sub and isinstance(token.setup[key], dict):
                effective.setdefault(key, {})
                if model_key(sub) in token.setup[key]:
                    effective[key][model_key(sub)] = copy.deepcopy(token.setup[key][model_key(sub)])
            else:
                effective[key] = copy.deepcopy(token.setup[key])
    # The resumption handle is per connection: it always comes from the client.
    handle = (client_setup.get("sessionResumption") or {}).get("handle")
    if handle and "sessionResumption" in effective:
        effective["sessionResumption"] = {**effective["sessionResumption"], "handle": handle}
    return effective


def model_key(path_part: str) -> str:
    """Field masks may name fields in snake_case; setups use camelCase keys."""
    head, *rest = path_part.split("_")
    return head + "".join(p.title() for p in rest)


def _check_token(state: EmulatorState, name: str, handle: str | None) -> TokenRecord | str:  # noqa: PLR0911 - one refusal per token check, as Google makes them
    """The token if it may open (or resume) a session now, else the close reason."""
    token = state.tokens.get(name)
    if token is None:
        return "Unauthenticated: invalid ephemeral token"
    now = datetime.now(UTC)
    if now >= token.expire_time:
        return "Unauthenticated: ephemeral token expired"
    if handle is not None:
        lineage = state.handles.get(handle)
        if lineage is None or lineage.token_name != token.name:
            return "Invalid session resumption handle"
        return token  # resuming spends no use and may happen after the new-session window
    if now >= token.new_session_expire_time:
        return "Unauthenticated: new session window of this ephemeral token has passed"
    if token.uses and token.uses_remaining <= 0:
        return "Unauthenticated: ephemeral token has no uses left"
    return token


async def _admit(
    socket: WebSocket[Any, Any, Any], state: EmulatorState, client_setup: dict[str, Any], version: str, method: str
) -> tuple[dict[str, Any], SessionLineage, TokenRecord | None] | None:
    """The session's effective setup, lineage and token; or None once the socket is closed with Google's refusal
    (credential, token state, a setup Google refuses for its model, a resumed session past its limit)."""
    credential = _credential(socket)
    handle = (client_setup.get("sessionResumption") or {}).get("handle")
    token: TokenRecord | None = None
    refusal: tuple[int, str] | None
    if credential and credential.startswith("auth_tokens/"):
        checked = _check_token(state, credential, handle)
        if isinstance(checked, str):
            refusal = (POLICY, checked)
        else:
            token = checked
            setup = _apply_lock(token, client_setup)
            lineage = state.handles[handle] if handle is not None else SessionLineage(token.name)
            over = lifetime.session_over(state, setup, lineage)
            refusal = setup_rules.refusal(setup, version) or ((POLICY, over) if over else None)
    elif credential is not None and state.keys.accepts(credential) and method == "BidiGenerateContent":
        setup = copy.deepcopy(client_setup)
        lineage = SessionLineage(None)
        refusal = setup_rules.refusal(setup, version)
    else:
        refusal = (POLICY, "Unauthenticated: API key or ephemeral token required")
    if refusal is not None:
        token_fp = fingerprint(credential) if credential and credential.startswith("auth_tokens/") else None
        log.info("emulator_session_refused", token_fingerprint=token_fp, code=refusal[0], reason=refusal[1])
        await socket.close(code=refusal[0], reason=refusal[1])
        return None
    if token is not None:
        if handle is None and token.uses:
            token.uses_remaining -= 1
        token.sessions += 1
    return setup, lineage, token


@websocket("/ws/{rpc:str}")
async def live_socket(socket: WebSocket[Any, Any, Any], rpc: str) -> None:
    """BidiGenerateContent[Constrained] for v1alpha and v1beta."""
    state: EmulatorState = socket.app.state.emulator
    await socket.accept()
    try:
        first = await socket.receive_data(mode="text")
        setup_frame = json.loads(first)
        client_setup = setup_frame["setup"]
        if not isinstance(client_setup, dict):
            raise TypeError
    except (WebSocketDisconnect, ValueError, KeyError, TypeError):
        await socket.close(code=1007, reason="Invalid setup message")
        return
    version, _, method = rpc.removeprefix(RPC_PREFIX).partition(".GenerativeService.")
    if (
        not rpc.startswith(RPC_PREFIX)
        or version not in ("v1alpha", "v1beta")
        or method not in ("BidiGenerateContent", "BidiGenerateContentConstrained")
    ):
        await socket.close(code=POLICY, reason="Method not found")
        return
    admitted = await _admit(socket, state, client_setup, version, method)
    if admitted is None:
        return
    setup, lineage, token = admitted
    handle = (client_setup.get("sessionResumption") or {}).get("handle")
    session_id = "session-" + secrets.token_hex(6)
    info: dict[str, Any] = {
        "id": session_id,
        "token": token.name if token else None,
        "resumed": handle is not None,
        "client_setup": copy.deepcopy(client_setup),
        "effective_setup": copy.deepcopy(setup),
        "started": datetime.now(UTC).isoformat(),
        "video": lineage.video,
        "frames": 0,
        "audio_seconds": 0.0,  # input audio this connection received
        "turns_heard": [],  # seconds of input audio in each spoken turn it answered
        "session_limit_seconds": lifetime.session_limit(state, setup, lineage.video),
    }
    state.sessions.append(info)
    log.info(
        "emulator_session_started",
        session=session_id,
        resumed=handle is not None,
        token_fingerprint=fingerprint(token.name) if token else None,
    )
    session = LiveSession(socket, state, token, setup, lineage, info)
    await session.run()
