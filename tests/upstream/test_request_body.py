"""The minter's precomputed request is exactly what the SDK's public call would send: path, headers, body."""

from __future__ import annotations

import socket
import ssl
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from service.config import FunctionDeclaration, ProfileConfig, Secret, UpstreamConfig
from service.emulator.cli import GOOGLE_KEEPALIVE_SECONDS
from service.metrics import Metrics
from service.upstream import TokenMinter, sdk_http_options
from service.upstream.constraints import build_constraints
from service.upstream.keys import ApiKey
from service.upstream.minter import IDLE_UPSTREAM_SECONDS, MAX_KEY_HEADS
from service.upstream.sdk import token_request_sender


async def test_template_equals_what_auth_tokens_create_sends(emulator: Any) -> None:
    """For a profile with voice, instruction, tools and transcription, the bodies match key for key."""
    profile = _profile()
    constraints = build_constraints(profile)[None]
    now = datetime.now(UTC)
    config = types.CreateAuthTokenConfig(
        uses=1,
        expire_time=now + timedelta(minutes=15),
        new_session_expire_time=now + timedelta(seconds=60),
        live_connect_constraints=constraints,
    )
    client = genai.Client(api_key=emulator.api_key, http_options=sdk_http_options(emulator.base_url, emulator.ca_file))
    try:
        await client.aio.auth_tokens.create(config=config)
        ours = token_request_sender(client).request_body(config)
    finally:
        await client.aio.aclose()
    assert emulator.last_request()["body"] == ours
    assert "fieldMask" not in ours


async def test_minted_request_equals_the_public_sdk_call_on_the_wire(emulator: Any) -> None:
    """The minter sends through the SDK's HTTP client with the SDK-built URL and headers and the SDK's JSON
    encoding: apart from the two expiry times, Google receives the same bytes as from auth_tokens.create."""
    profile = _profile()
    minter = TokenMinter(
        api_key=Secret(emulator.api_key),
        base_url=emulator.base_url,
        ca_file=emulator.ca_file,
        profiles={"voice": profile},
        upstream=UpstreamConfig(),
        metrics=Metrics(),
    )
    try:
        token = await minter.mint("voice", None)
    finally:
        await minter.aclose()
    ours = emulator.last_request()
    config = types.CreateAuthTokenConfig(
        uses=profile.uses,
        expire_time=token.expire_time,
        new_session_expire_time=token.new_session_expire_time,
        live_connect_constraints=token.constraints,
    )
    client = genai.Client(api_key=emulator.api_key, http_options=sdk_http_options(emulator.base_url, emulator.ca_file))
    try:
        await client.aio.auth_tokens.create(config=config)
    finally:
        await client.aio.aclose()
    public = emulator.last_request()
    assert token.name.startswith("auth_tokens/")
    assert ours["path"] == public["path"] == "/v1alpha/auth_tokens"
    assert ours["raw_body"] == public["raw_body"]
    assert ours["headers"] == public["headers"]
    assert ours["headers"]["x-goog-api-key"] == "<redacted>"  # the key went where Google expects it


def _profile() -> ProfileConfig:
    return ProfileConfig(
        model="gemini-3.8-live",
        voice="Kore",
        system_instruction="Be brief.",
        temperature=0.5,
        input_audio_transcription=True,
        output_audio_transcription=True,
        context_window_compression=True,
        tools=[
            FunctionDeclaration(
                name="calculate", parameters={"type": "object", "properties": {"x": {"type": "string"}}}
            )
        ],
    )


def _read_answer(sock: ssl.SSLSocket) -> bytes:
    """The status line of one whole HTTP/1.1 answer (head and Content-Length body read off the socket); b"" when
    the server has closed the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = int(next(line for line in lines if line.lower().startswith(b"content-length:")).split(b":")[1])
    while len(body) < length:
        body += sock.recv(65536)
    return lines[0]


def test_an_idle_keep_alive_connection_stays_open_as_at_google(emulator: Any) -> None:
    """Google's front ends keep an idle keep-alive connection 610 s, and so does the emulator (uvicorn's default
    closed it after 5 s, so a warm pool met a server that had already hung up): a second request on one TLS
    connection 6 s after the first is answered on that same connection."""
    parts = urlsplit(emulator.base_url)
    context = ssl.create_default_context(cafile=emulator.ca_file)
    request = f"GET /v1alpha/models HTTP/1.1\r\nHost: {parts.netloc}\r\nx-goog-api-key: {emulator.api_key}\r\n\r\n"
    with (
        socket.create_connection((parts.hostname, parts.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
    ):
        statuses = []
        for pause in (0, 6):
            time.sleep(pause)  # the idle time on the server's side is what is tested
            tls.sendall(request.encode())
            statuses.append(_read_answer(tls))
    assert statuses == [b"HTTP/1.1 404 Not Found"] * 2  # answered twice on one connection (no such route here)
    assert IDLE_UPSTREAM_SECONDS < GOOGLE_KEEPALIVE_SECONDS  # the minter hangs up first, never the server


async def test_the_request_heads_kept_per_api_key_stay_bounded(emulator: Any) -> None:
    """A long-lived process whose key file rotated through 40 keys keeps at most MAX_KEY_HEADS request heads (each
    holds its key), and still mints with the key in use; a key Google does not know is refused as Google does."""
    minter = TokenMinter(
        api_key=Secret(emulator.api_key),
        base_url=emulator.base_url,
        ca_file=emulator.ca_file,
        profiles={"voice": _profile()},
        upstream=UpstreamConfig(),
        metrics=Metrics(),
    )
    try:
        for i in range(40):
            with pytest.raises(genai_errors.ClientError) as refused:
                await minter._send(ApiKey(Secret(f"AIza-rotated-out-{i}"), f"sha256:{i:012x}"), b"{}", 5.0)
            assert refused.value.code == 400
            assert len(minter._heads) <= MAX_KEY_HEADS
        token = await minter.mint("voice", None)
    finally:
        await minter.aclose()
    assert token.name.startswith("auth_tokens/")
