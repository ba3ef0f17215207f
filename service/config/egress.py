"""The egress proxy: `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (and their lower-case forms), read once at start-up.

Every outbound call of the service (the mint to Google, JWKS and discovery fetches) asks `Egress.proxy_for(url)`
which way to go, so one set of rules decides for all of them. The lower-case variable wins over the upper-case one,
as curl and Python's urllib read them. A proxy is an `http://` URL (credentials in it become
`Proxy-Authorization: Basic …` and are never logged or shown); the connection to the origin goes through it as a
CONNECT tunnel, so TLS to Google stays end to end.

`NO_PROXY` is a comma-separated list: `*` (no proxy at all), host names (`internal.example` also matches
`api.internal.example`; a leading dot is the same), IP addresses, each optionally with `:port`.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from service.config.errors import ConfigError
from service.config.secret import Secret

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Proxy:
    """One forward proxy: where it is, and the `Proxy-Authorization` value its URL's credentials make."""

    host: str
    port: int
    authorization: Secret | None
    url: Secret  # the whole URL, credentials included (for httpx)
    shown: str  # the URL without credentials: what logs and errors may say

    def connect_request(self, host: str, port: int) -> bytes:
        """The CONNECT request that opens a tunnel to host:port."""
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if self.authorization is not None:
            lines.append(f"Proxy-Authorization: {self.authorization.reveal()}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class Egress:
    """Which proxy, if any, each outbound URL goes through."""

    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: tuple[str, ...] = ()

    def proxy_for(self, url: str) -> Proxy | None:
        """The proxy for `url` (by its scheme), or None to go direct (no proxy set, or a NO_PROXY match)."""
        parts = urlsplit(url)
        proxy = self.https if parts.scheme in ("https", "wss") else self.http
        if proxy is None or not parts.hostname:
            return None
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.replace("ws", "http"), 443)
        return None if self.bypasses(parts.hostname, port) else proxy

    def bypasses(self, host: str, port: int) -> bool:
        """Whether NO_PROXY sends host:port direct."""
        host = host.lower().rstrip(".")
        for entry in self.no_proxy:
            if entry == "*":
                return True
            name, want_port = _split_port(entry)
            if want_port is not None and want_port != port:
                continue
            name = name.lstrip(".").rstrip(".")
            if host == name or (not _is_ip(host) and host.endswith("." + name)):
                return True
        return False

    @property
    def description(self) -> str:
        """What a start-up log line says: the proxies (without credentials) and the exemptions."""
        parts = [f"{scheme}={p.shown}" for scheme, p in (("https", self.https), ("http", self.http)) if p]
        if self.no_proxy:
            parts.append(f"no_proxy={','.join(self.no_proxy)}")
        return " ".join(parts) or "direct"


def load_egress(env: Mapping[str, str]) -> Egress:
    """The proxies the environment names, checked; ConfigError naming the variable (never its credentials)."""
    no_proxy = _first(env, "no_proxy") or ""
    return Egress(
        http=_proxy(env, "http_proxy"),
        https=_proxy(env, "https_proxy"),
        no_proxy=tuple(e.strip().lower() for e in no_proxy.split(",") if e.strip()),
    )


def _first(env: Mapping[str, str], lower: str) -> str | None:
    for name in (lower, lower.upper()):
        if env.get(name, "").strip():
            return env[name].strip()
    return None


def _proxy(env: Mapping[str, str], lower: str) -> Proxy | None:
    name = lower if env.get(lower, "").strip() else lower.upper()
    raw = _first(env, lower)
    if raw is None:
        return None
    text = raw if "://" in raw else f"http://{raw}"  # "proxy:3128", as curl takes it
    try:
        parts = urlsplit(text)
        port = parts.port or 80
    except ValueError:
        raise ConfigError(f"{name}: not a proxy URL such as http://proxy.internal:3128") from None
    if parts.scheme != "http":
        raise ConfigError(
            f"{name}: only http:// proxies are supported (the connection to the origin is a CONNECT tunnel, so "
            f"TLS to Google stays end to end), not {parts.scheme}://"
        )
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{name}: not a proxy URL such as http://proxy.internal:3128")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = Secret("Basic " + base64.b64encode(pair.encode()).decode())
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return Proxy(
        host=parts.hostname,
        port=port,
        authorization=authorization,
        url=Secret(text),
        shown=f"http://{host}:{port}",
    )


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [::1]:8080
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    host, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return entry, None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
