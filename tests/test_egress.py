"""Which outbound URL goes through which proxy: the environment's variables as curl and urllib read them."""

from __future__ import annotations

import base64

import pytest

from service.config import ConfigError
from service.config.egress import load_egress

GOOGLE = "https://generativelanguage.googleapis.com/v1alpha/auth_tokens"


def test_https_and_http_urls_take_their_own_proxy_and_lower_case_wins() -> None:
    """https:// (and wss://) go through HTTPS_PROXY, http:// through HTTP_PROXY; https_proxy beats HTTPS_PROXY."""
    egress = load_egress(
        {"HTTPS_PROXY": "http://upper:3128", "https_proxy": "http://lower:3128", "HTTP_PROXY": "plain:8080"}
    )
    assert egress.https is not None
    assert egress.http is not None
    assert egress.proxy_for(GOOGLE) is egress.https
    assert egress.proxy_for("wss://generativelanguage.googleapis.com/ws/x") is egress.https
    assert (egress.https.host, egress.https.port, egress.https.shown) == ("lower", 3128, "http://lower:3128")
    assert egress.proxy_for("http://idp.internal/jwks.json") is egress.http
    assert (egress.http.host, egress.http.port) == ("plain", 8080)
    assert load_egress({}).proxy_for(GOOGLE) is None


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("*", GOOGLE, True),
        ("googleapis.com", GOOGLE, True),
        (".googleapis.com", GOOGLE, True),
        ("generativelanguage.googleapis.com", GOOGLE, True),
        ("apis.com", GOOGLE, False),  # a suffix of the name is not a domain of it
        ("googleapis.com:443", GOOGLE, True),
        ("googleapis.com:8443", GOOGLE, False),
        ("127.0.0.1", "https://127.0.0.1:9443/x", True),
        ("127.0.0.1", "https://127.0.0.10:9443/x", False),
        ("[::1]:9443", "https://[::1]:9443/x", True),
        ("localhost", "https://127.0.0.1/x", False),  # no resolving: names and addresses as written
        ("", GOOGLE, False),
    ],
)
def test_no_proxy_matching(no_proxy: str, url: str, direct: bool) -> None:
    """NO_PROXY entries: `*`, domains (with their subdomains, a leading dot or not), addresses, optional ports."""
    egress = load_egress({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": no_proxy})
    assert (egress.proxy_for(url) is None) is direct


def test_credentials_become_proxy_authorization_and_are_never_shown() -> None:
    """user:password in the URL (percent-decoded) is the Basic Proxy-Authorization of the CONNECT; `shown` and
    the description have no credentials."""
    egress = load_egress({"HTTPS_PROXY": "http://us%40er:p%3Ass@proxy.internal:3128", "NO_PROXY": "metadata"})
    proxy = egress.https
    assert proxy is not None
    expected = "Basic " + base64.b64encode(b"us@er:p:ss").decode()
    assert proxy.connect_request("generativelanguage.googleapis.com", 443) == (
        b"CONNECT generativelanguage.googleapis.com:443 HTTP/1.1\r\n"
        b"Host: generativelanguage.googleapis.com:443\r\n"
        b"Proxy-Authorization: " + expected.encode() + b"\r\n\r\n"
    )
    assert egress.description == "https=http://proxy.internal:3128 no_proxy=metadata"
    assert "p%3Ass" not in repr(proxy)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://proxy:3128", "only http:// proxies are supported"),
        ("http://proxy:3128/path", "not a proxy URL such as http://proxy.internal:3128"),
        ("http://:3128", "not a proxy URL such as http://proxy.internal:3128"),
    ],
)
def test_a_bad_proxy_url_names_the_variable(value: str, message: str) -> None:
    """ConfigError naming the variable (the lower-case one here, as it is the one read)."""
    with pytest.raises(ConfigError) as err:
        load_egress({"https_proxy": value})
    assert str(err.value).startswith(f"https_proxy: {message}")
