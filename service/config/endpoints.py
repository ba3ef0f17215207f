"""Addresses the configuration names: browser origins, http(s) URLs (upstream, JWKS) and Redis URLs.

The URL checks raise ValueError saying what is wrong but not where (the caller names the key or variable),
and never repeat a password.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qs

from redis.connection import parse_url as parse_redis_url

from service.config.errors import ConfigError

ORIGIN_PATTERN = r"^(\*|https?://[^\s/?#@]+)\Z"
ORIGIN_MEANING = "an origin such as https://app.example or http://localhost:5173 (no path), or *"
_HOST_NAME = re.compile(r"[\w.%-]+")
_NUMBER = re.compile(r"[0-9]+")


def check_origin(origin: str, where: str) -> None:
    """A browser origin as browsers send it: scheme://host[:port], no path or trailing slash; or `*` for any."""
    if not re.match(ORIGIN_PATTERN, origin):
        raise ConfigError(f"{where}: {origin!r} is not {ORIGIN_MEANING}")


def check_http_url(url: str) -> None:
    """ValueError unless `url` is an http(s) URL with a host and no credentials, query or fragment."""
    scheme, authority, rest = _split(url)
    if scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if "@" in authority:
        raise ValueError("must not carry a user name or password")
    if "?" in rest:
        raise ValueError("must not have a query string ('?...')")
    if "#" in rest:
        raise ValueError("must not have a fragment ('#...')")
    _check_host_and_port(authority, "names no host")


def check_redis_url(url: str) -> None:
    """ValueError unless redis-py reads `url` as written: a host, a port 1-65535, a numeric database."""
    scheme, authority, rest = _split(url)
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must start with redis://, rediss:// or unix://")
    if "@" in rest:  # an unencoded '/', '?' or '#' in the password ended the host part early
        raise ValueError("percent-encode the password: a '/', '?' or '#' in it cuts the URL short")
    path, _, query = rest.partition("?")
    host_part = authority.rpartition("@")[2]
    if scheme == "unix":
        if host_part or len(path) < 2:
            raise ValueError("unix:// needs the socket's absolute path, e.g. unix:///run/redis/redis.sock")
    else:
        _check_host_and_port(host_part, "names no host, e.g. redis://HOST:6379/0")
    databases = parse_qs(query).get("db", [])
    if scheme != "unix" and path.strip("/"):
        databases.append(path.strip("/"))  # redis-py reads the path as the database number
    for db in databases:
        if not _NUMBER.fullmatch(db):
            raise ValueError(f"database {db!r} is not a number")
    # The other query arguments, as redis-py reads them; its messages name the argument, never the value.
    parse_redis_url(url)  # type: ignore[no-untyped-call]  # redis-py leaves parse_url unannotated


def _split(url: str) -> tuple[str, str, str]:
    """(scheme, authority, path-query-fragment) without urllib, whose errors would quote the password."""
    if any(c.isspace() for c in url):
        raise ValueError("must not contain spaces")
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme = ""
    end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    return scheme.lower(), rest[:end], rest[end:]


def _check_host_and_port(hostport: str, no_host: str) -> None:
    port: str | None
    if hostport.startswith("["):
        port = _ipv6_port(hostport)
    else:
        if hostport.count(":") > 1:
            raise ValueError("an IPv6 host must be in brackets, such as [::1]")
        host, colon, port = hostport.partition(":")
        if not host:
            raise ValueError(no_host)
        if not _HOST_NAME.fullmatch(host):
            raise ValueError(f"host {host!r} is not a host name")
        port = port if colon else None
    if port is not None:
        if not _NUMBER.fullmatch(port):
            raise ValueError(f"port {port!r} is not a number")
        if not 1 <= int(port) <= 65535:
            raise ValueError(f"port {int(port)} is not between 1 and 65535")


def _ipv6_port(hostport: str) -> str | None:
    """Check a bracketed IPv6 host; the port text after it, or None when there is no port."""
    host, bracket, after = hostport[1:].partition("]")
    if not bracket:
        raise ValueError(f"host {hostport!r} is missing its closing ']'")
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        raise ValueError(f"host '[{host}]' is not an IPv6 address") from None
    if after and not after.startswith(":"):
        raise ValueError(f"host {hostport!r} has text after its closing ']'")
    return after[1:] if after else None


def discovery_url_problem(url: str) -> str | None:
    """Why `url` may not be fetched for OpenID Connect discovery or keys (an issuer, a `jwks_uri`), or None:
    it must be https, or http on a loopback address (a provider on this host, as in tests)."""
    try:
        check_http_url(url)
    except ValueError as exc:
        return str(exc)
    scheme, authority, _ = _split(url)
    if scheme == "https":
        return None
    host = authority.rpartition("@")[2]
    host = host[1 : host.index("]")] if host.startswith("[") else host.rpartition(":")[0] or host
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return "plain http only on a loopback address"
