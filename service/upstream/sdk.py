"""The one place that touches google-genai's private API, resolved once at start-up.

The minter builds the `auth_tokens.create` request once per profile with the SDK's own converters, URL and
headers (the TLS context is livetoken's own: `upstream_tls`), sends it one attempt at a time on its own kept-alive
connections (http1.py; its retries are ours, inside our deadline) and judges the answer with the SDK's error
classes: a token costs a fraction of the public call's CPU. That needs six private names. They are looked up here
when the minter is built; if an SDK upgrade renamed one, start-up fails naming the SDK version and the missing
name, instead of every mint failing at run time as an "upstream outage". pyproject pins google-genai to the range
these names are tested against (tests/upstream).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

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
        ctx = upstream_tls(ca_file)  # the same trust as the mint's own connections
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


def upstream_tls(ca_file: str | None) -> ssl.SSLContext:
    """The TLS context for Google: the system's trust store, plus `LIVETOKEN_GEMINI_CA_FILE` when set (the
    emulator's CA, or a TLS-inspecting egress proxy's). Built here, not taken from the SDK's HTTP client."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


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
    _template: Any  # the SDK's own HttpRequest for POST auth_tokens: URL, API-key and client headers

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

    @property
    def url(self) -> str:
        """Where the SDK sends `auth_tokens.create`: `{base_url}/{api_version}/auth_tokens`."""
        return str(self._template.url)

    def headers(self, api_key: str) -> dict[str, str]:
        """The SDK's headers for the call, in its order, with `api_key` where the SDK puts it (same name, same
        place: the same bytes on the wire)."""
        headers = dict(self._template.headers)
        headers[API_KEY_HEADER] = api_key
        return headers


def token_request_sender(client: genai.Client) -> TokenRequestSender:
    """Resolve every private name now; raises SdkIncompatibleError naming the SDK version and the name."""
    from google.genai import _common, _tokens_converters
    from google.genai import tokens as genai_tokens

    api_client = _lookup(client.aio, "_api_client")
    build_request = _lookup(api_client, "_build_request")
    return TokenRequestSender(
        _api_client=api_client,
        _to_mldev=_lookup(_tokens_converters, "_CreateAuthTokenParameters_to_mldev"),
        _bidi_to_token_setup=_lookup(genai_tokens, "_convert_bidi_setup_to_token_setup"),
        _convert_to_dict=_lookup(_common, "convert_to_dict"),
        _encode_unserializable=_lookup(_common, "encode_unserializable_types"),
        _template=build_request("post", "auth_tokens", {}, None),
    )


def check_sdk() -> None:
    """Resolve the private names against a throwaway client (the CLI runs this before serving)."""
    client = genai.Client(api_key="unused-by-this-check", http_options=sdk_http_options(None, None))
    token_request_sender(client)
