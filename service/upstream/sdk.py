"""The one place that touches google-genai's private API, resolved once at start-up.

The minter builds the `auth_tokens.create` request once per profile with the SDK's own converters and then
sends it through the SDK's HTTP client one attempt at a time (its retries are ours, inside our deadline): a
token costs a third of the public call's CPU. That needs six private names. They are looked up here when the
minter is built; if an SDK upgrade renamed one, start-up fails naming the SDK version and the missing name,
instead of every mint failing at run time as an "upstream outage". pyproject pins google-genai to the range
these names are tested against (tests/upstream).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import aiohttp
from google import genai
from google.genai import types

from service.upstream.endpoints import API_VERSION

SUPPORTED_SDK = ">=3.6,<3.7"
API_KEY_HEADER = "x-goog-api-key"  # where the SDK's request template carries the API key


class SdkIncompatibleError(Exception):
    """The installed google-genai lacks a private name the minter relies on."""


def sdk_version() -> str:
    """The installed google-genai version."""
    try:
        return version("google-genai")
    except PackageNotFoundError:  # pragma: no cover - the SDK is a hard dependency
        return "unknown"


def sdk_http_options(base_url: str | None, ca_file: str | None, timeout_ms: int | None = None) -> types.HttpOptions:
    """HttpOptions for the Live API at `base_url` (None = Google), trusting `ca_file` if given (public API only).

    The context goes to httpx as `verify` (REST) and to websockets as `ssl` (Live); the SDK keeps only the
    argument each client understands. With no CA file the system trust store is used, as for Google.
    """
    args: dict[str, Any] = {}
    if ca_file is not None:
        ctx = ssl.create_default_context(cafile=ca_file)
        args = {"verify": ctx, "ssl": ctx}
    return types.HttpOptions(
        base_url=base_url,
        api_version=API_VERSION,
        async_client_args=args or None,
        timeout=timeout_ms,
        # Retries are the caller's (the minter's are bounded, inside its deadline): without this the SDK's
        # aiohttp path silently sleeps 1-10 s and retries a dropped connection.
        retry_options=types.HttpRetryOptions(attempts=1),
    )


def _lookup(owner: object, name: str) -> Any:
    try:
        return getattr(owner, name)
    except AttributeError:
        where = getattr(owner, "__name__", type(owner).__name__)
        raise SdkIncompatibleError(
            f"google-genai {sdk_version()} has no {where}.{name}, which livetoken's minter uses; "
            f"install google-genai{SUPPORTED_SDK} (see pyproject.toml)"
        ) from None


@dataclass(frozen=True, slots=True)
class TokenRequestSender:
    """The SDK's private pieces for `auth_tokens.create`, bound to one client."""

    _api_client: Any
    _to_mldev: Callable[[Any, Any], dict[str, Any]]
    _bidi_to_token_setup: Callable[[dict[str, Any], Any], dict[str, Any]]
    _convert_to_dict: Callable[[Any], Any]
    _encode_unserializable: Callable[[Any], Any]
    _http_request: type[Any]
    _send_once: Callable[..., Awaitable[Any]]
    _template: Any  # the SDK's own HttpRequest for POST auth_tokens: URL, API-key and client headers, timeout
    _session_request_args: dict[str, Any]  # what the SDK passes to aiohttp per request (its TLS context)

    def request_body(self, config: types.CreateAuthTokenConfig) -> dict[str, Any]:
        """The JSON body `client.aio.auth_tokens.create(config=config)` sends, built by the SDK's converters.

        Built once per (profile, voice) at start-up; afterwards only the two expiry times change. A test pins
        that it equals what the public SDK call puts on the wire.
        """
        params = types.CreateAuthTokenParameters(config=config)
        body = self._to_mldev(self._api_client, params)
        for internal in ("config", "_url", "_query"):
            body.pop(internal, None)
        body = self._bidi_to_token_setup(body, config)
        return dict(self._encode_unserializable(self._convert_to_dict(body)))

    def request(self, data: bytes, api_key: str) -> Any:
        """The SDK-built request for POST auth_tokens (built once, copied per attempt) carrying `data`, with
        `api_key` in the header where the SDK puts it (same name, same place: the same bytes on the wire)."""
        t = self._template
        headers = dict(t.headers)
        headers[API_KEY_HEADER] = api_key
        return self._http_request(method=t.method, url=t.url, headers=headers, data=data, timeout=t.timeout)

    async def open_connections(self, session: Any, count: int, each_within: float) -> int:
        """Open up to `count` pooled connections to the upstream host (TCP + TLS handshakes done now, not under
        the first burst): HEAD requests to its root, with the SDK's own per-request arguments so the pool keys
        match the mints'. No API key is sent. Returns how many answered."""
        url = self._template.url.split("/", 3)
        root = "/".join(url[:3]) + "/"
        args = {k: v for k, v in self._session_request_args.items() if k == "ssl"}

        async def one() -> bool:
            try:
                async with asyncio.timeout(each_within), session.head(root, allow_redirects=False, **args) as resp:
                    await resp.read()
            except (OSError, TimeoutError, aiohttp.ClientError):
                return False
            return True

        return sum(await asyncio.gather(*(one() for _ in range(count))))

    async def send_once(self, request: Any) -> str | None:
        """One attempt through the SDK's HTTP client (no SDK retries); the response body, or None."""
        response = await self._send_once(request, False, implicit_retry=False)
        return response.response_stream[0] if response.response_stream else None


def token_request_sender(client: genai.Client) -> TokenRequestSender:
    """Resolve every private name now; raises SdkIncompatibleError naming the SDK version and the name."""
    from google.genai import _api_client, _common, _tokens_converters
    from google.genai import tokens as genai_tokens

    api_client = _lookup(client.aio, "_api_client")
    build_request = _lookup(api_client, "_build_request")
    return TokenRequestSender(
        _api_client=api_client,
        _to_mldev=_lookup(_tokens_converters, "_CreateAuthTokenParameters_to_mldev"),
        _bidi_to_token_setup=_lookup(genai_tokens, "_convert_bidi_setup_to_token_setup"),
        _convert_to_dict=_lookup(_common, "convert_to_dict"),
        _encode_unserializable=_lookup(_common, "encode_unserializable_types"),
        _http_request=_lookup(_api_client, "HttpRequest"),
        _send_once=_lookup(api_client, "_async_request_once"),
        _template=build_request("post", "auth_tokens", {}, None),
        _session_request_args=dict(_lookup(api_client, "_async_client_session_request_args")),
    )


def check_sdk() -> None:
    """Resolve the private names against a throwaway client (the CLI runs this before serving)."""
    client = genai.Client(api_key="unused-by-this-check", http_options=sdk_http_options(None, None))
    token_request_sender(client)
