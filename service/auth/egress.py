"""Outbound HTTP for JWKS and discovery fetches, through the egress proxy the environment names (if any).

httpx's own reading of the environment is off (`trust_env=False`): this transport asks the service's one `Egress`
(read once at start-up) which way each request goes, so the mint and these fetches follow the same rules.
"""

from __future__ import annotations

import httpx

from service.config import Egress, Proxy


class EgressTransport(httpx.AsyncBaseTransport):
    """Sends each request direct or through its proxy (httpx's own proxy transport: CONNECT for https)."""

    def __init__(self, egress: Egress) -> None:
        self._egress = egress
        self._direct = httpx.AsyncHTTPTransport()
        self._proxied: dict[str, httpx.AsyncHTTPTransport] = {}

    def _via(self, proxy: Proxy) -> httpx.AsyncHTTPTransport:
        transport = self._proxied.get(proxy.shown)
        if transport is None:
            transport = self._proxied[proxy.shown] = httpx.AsyncHTTPTransport(proxy=httpx.Proxy(proxy.url.reveal()))
        return transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Route `request` by its URL."""
        proxy = self._egress.proxy_for(str(request.url))
        transport = self._direct if proxy is None else self._via(proxy)
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        """Close every pool."""
        await self._direct.aclose()
        for transport in self._proxied.values():
            await transport.aclose()
