"""The CLI explains start-up problems in one line instead of a traceback."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import livetoken_exe
from tests.support.service import JWT_SECRET, service_env, write_config


def test_busy_port_is_explained(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """`livetoken serve` on a port in use exits 1 with a line naming the address and the fix."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = subprocess.run(
            [livetoken_exe(), "serve", "--config", str(write_config(tmp_path)), "--port", str(port)],
            env=service_env(emulator, redis_url) | {"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert res.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in res.stderr
    assert "Traceback" not in res.stderr


def test_bad_config_is_explained(tmp_path: Path) -> None:
    """A broken config file stops `serve` with exit 2 and the key named, before anything starts."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[[issuers]]\nissuer = "x"\n')
    res = subprocess.run(
        [livetoken_exe(), "serve", "--config", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 2
    assert "configuration error" in res.stderr
    assert "issuers[0].audiences: required key is missing" in res.stderr


# The issuer and environment that make `write_config`'s file valid; each case below spoils one thing.
_GOOD_ENV = {"TEST_ISSUER_SECRET": JWT_SECRET, "LIVETOKEN_GEMINI_API_KEY": "test-api-key", "PATH": "/usr/bin:/bin"}
_PEM_ISSUER = (
    '\n[[issuers]]\nissuer = "https://pem.test/"\naudiences = ["livetoken"]\nalgorithms = ["{alg}"]\n{source}\n'
)

BAD_SETUPS = [
    pytest.param(
        {"LIVETOKEN_REDIS_URL": "redis://:hunter2@127.0.0.1:notaport/0"},
        "",
        "LIVETOKEN_REDIS_URL: port 'notaport' is not a number",
        id="redis-port-not-a-number",
    ),
    pytest.param(
        {"LIVETOKEN_REDIS_URL": "redis://127.0.0.1:99999/0"},
        "",
        "LIVETOKEN_REDIS_URL: port 99999 is not between 1 and 65535",
        id="redis-port-out-of-range",
    ),
    pytest.param(
        {"LIVETOKEN_REDIS_URL": "redis://[::1:6390/0"},
        "",
        "LIVETOKEN_REDIS_URL: host '[::1:6390' is missing its closing ']'",
        id="redis-ipv6-unclosed",
    ),
    pytest.param(
        {"LIVETOKEN_REDIS_URL": "redis://127.0.0.1:6379/abc"},
        "",
        "LIVETOKEN_REDIS_URL: database 'abc' is not a number",
        id="redis-database-not-a-number",
    ),
    pytest.param(
        {"LIVETOKEN_GEMINI_CA_FILE": "{garbage}"},
        "",
        "LIVETOKEN_GEMINI_CA_FILE: '{garbage}' holds no PEM certificate",
        id="ca-file-not-a-certificate",
    ),
    pytest.param(
        {"LIVETOKEN_GEMINI_BASE_URL": "https://"}, "", "LIVETOKEN_GEMINI_BASE_URL: names no host", id="base-url-no-host"
    ),
    pytest.param(
        {"LIVETOKEN_GEMINI_BASE_URL": "https://host/path?x"},
        "",
        "LIVETOKEN_GEMINI_BASE_URL: must not have a query string ('?...')",
        id="base-url-query",
    ),
    pytest.param(
        {"LIVETOKEN_GEMINI_BASE_URL": "ftp://host"},
        "",
        "LIVETOKEN_GEMINI_BASE_URL: must be an http:// or https:// URL",
        id="base-url-ftp",
    ),
    pytest.param(
        {},
        _PEM_ISSUER.format(alg="RS256", source='public_key_file = "{garbage}"'),
        "issuers[1].public_key_file: '{garbage}' is not a PEM public key",
        id="public-key-file-garbage",
    ),
    pytest.param(
        {},
        _PEM_ISSUER.format(alg="RS256", source='jwks_url = "https://"'),
        "issuers[1].jwks_url: names no host",
        id="jwks-url-no-host",
    ),
    pytest.param(
        {},
        _PEM_ISSUER.format(alg="HS256", source='jwks_url = "https://pem.test/jwks"'),
        "issuers[1].algorithms: HS algorithms need hs256_secret_env; never mix them with public keys",
        id="jwks-url-with-hs256",
    ),
]


@pytest.mark.parametrize(("env_extra", "config_extra", "message"), BAD_SETUPS)
@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_bad_setup_is_one_line_exit_2(
    tmp_path: Path, command: str, env_extra: dict[str, str], config_extra: str, message: str
) -> None:
    """Every bad variable or key stops `check-config` and `serve` alike: one line naming it, exit 2, no traceback."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not PEM\n")
    config = write_config(tmp_path, extra=config_extra.replace("{garbage}", str(garbage)))
    env = _GOOD_ENV | {name: value.replace("{garbage}", str(garbage)) for name, value in env_extra.items()}
    args = ["check-config", str(config)] if command == "check-config" else ["serve", "--config", str(config)]
    res = subprocess.run([livetoken_exe(), *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 2, res.stderr
    assert res.stderr == f"livetoken: configuration error: {message.replace('{garbage}', str(garbage))}\n"
    assert "hunter2" not in res.stderr
