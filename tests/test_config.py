"""Configuration: the example config is valid; every bad config is refused with the bad key named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from service.cli import main
from service.config import ConfigError, load_env, load_file_config
from service.emulator.certs import ensure_certificates

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "deploy" / "livetoken.toml"
GOOD_SECRET = "s" * 40

BASE = """
[[issuers]]
issuer = "https://idp.test/"
audiences = ["livetoken"]
algorithms = ["HS256"]
hs256_secret_env = "TEST_SECRET"

[profiles.voice]
model = "gemini-3.8-live"
voice = "Puck"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "livetoken.toml"
    path.write_text(text)
    return path


def test_example_config_is_valid() -> None:
    """The shipped deploy/livetoken.toml (used by docs, compose and tests) passes validation."""
    cfg = load_file_config(EXAMPLE)
    assert {"voice", "text", "support-agent"} <= set(cfg.profiles)
    env = {"LIVETOKEN_GEMINI_API_KEY": "k", "LIVETOKEN_BACKEND_JWT_SECRET": GOOD_SECRET}
    assert load_env(env, cfg).issuer_secrets


BAD_CONFIGS = [
    pytest.param(BASE + "\nunknown_top = 1\n", "unknown_top: unknown key", id="unknown-top-level-key"),
    pytest.param(BASE + 'colour = "red"\n', "profiles.voice.colour: unknown key", id="unknown-profile-key"),
    pytest.param(
        BASE.replace('hs256_secret_env = "TEST_SECRET"', 'hs256_secret_env = "TEST_SECRET"\nfoo = 1'),
        "issuers[0].foo: unknown key",
        id="unknown-issuer-key",
    ),
    pytest.param(
        BASE.replace('voice = "Puck"', 'response_modalities = ["AUDIO", "TEXT"]'),
        "profiles.voice.response_modalities",
        id="audio-and-text",
    ),
    pytest.param(BASE + 'session_ttl = "21h"\n', "profiles.voice.session_ttl", id="ttl-over-20h"),
    pytest.param(BASE + 'session_ttl = "20h"\n', "profiles.voice.session_ttl", id="ttl-exactly-20h"),
    pytest.param(
        BASE.replace('hs256_secret_env = "TEST_SECRET"', ""),
        "issuers[0]: set exactly one key source",
        id="zero-key-sources",
    ),
    pytest.param(
        BASE.replace(
            'hs256_secret_env = "TEST_SECRET"', 'hs256_secret_env = "TEST_SECRET"\njwks_url = "https://idp.test/jwks"'
        ),
        "issuers[0]: set exactly one key source",
        id="two-key-sources",
    ),
    pytest.param(BASE + "require = {}\n", "profiles.voice.require", id="require-references-nothing"),
    pytest.param(BASE + "require = { scopes = [] }\n", "profiles.voice.require", id="require-empty-scopes"),
    pytest.param(
        BASE.replace('algorithms = ["HS256"]', 'algorithms = ["HS256", "RS256"]'),
        "issuers[0].algorithms",
        id="hs-and-rs-mixed",
    ),
    pytest.param(
        BASE.replace('algorithms = ["HS256"]', 'algorithms = ["none"]'), "issuers[0].algorithms", id="alg-none"
    ),
    pytest.param(BASE.replace('voice = "Puck"', 'voice = "Bob"'), "profiles.voice.voice", id="unknown-voice"),
    pytest.param(BASE + 'session_ttl = "soon"\n', "profiles.voice.session_ttl", id="unparseable-duration"),
    pytest.param(BASE + "uses = -1\n", "profiles.voice.uses", id="negative-uses"),
    pytest.param(BASE + '[limits]\nfail_mode = "maybe"\n', "limits.fail_mode", id="bad-fail-mode"),
    pytest.param(BASE + "[[limits.subject]]\nrate = 0\n", "limits.subject[0].rate", id="zero-rate"),
    pytest.param(BASE.replace("[profiles.voice]", "[profiles.Voice]"), "profiles.Voice", id="bad-profile-name"),
    pytest.param("[[issuers]\n", "not valid TOML", id="not-toml"),
    pytest.param(
        BASE.replace('hs256_secret_env = "TEST_SECRET"', 'jwks_url = "https://idp.test/jwks"'),
        "issuers[0].algorithms: HS algorithms need hs256_secret_env; never mix them with public keys",
        id="jwks-url-with-hs256",
    ),
    pytest.param(
        BASE.replace('hs256_secret_env = "TEST_SECRET"', 'public_key_file = "/etc/idp.pem"'),
        "issuers[0].algorithms: HS algorithms need hs256_secret_env; never mix them with public keys",
        id="public-key-file-with-hs256",
    ),
    pytest.param(
        BASE.replace('hs256_secret_env = "TEST_SECRET"', 'jwks_url = "https://idp.test/jwks?x"'),
        "issuers[0].jwks_url: must not have a query string ('?...')",
        id="jwks-url-with-query",
    ),
    pytest.param(
        BASE.replace('hs256_secret_env = "TEST_SECRET"', 'jwks_url = "idp.test/jwks"'),
        "issuers[0].jwks_url: must be an http:// or https:// URL",
        id="jwks-url-without-scheme",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_check_config_names_the_bad_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    """`livetoken check-config` exits 2 and its message names the offending key."""
    monkeypatch.setenv("TEST_SECRET", GOOD_SECRET)
    path = _write(tmp_path, text)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err, err


def test_short_hs256_secret_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An HS256 secret under 32 bytes is refused, naming the issuer key and the variable, not the value."""
    monkeypatch.setenv("TEST_SECRET", "short-secret-value")
    assert main(["check-config", str(_write(tmp_path, BASE))]) == 2
    err = capsys.readouterr().err
    assert "issuers[0].hs256_secret_env" in err
    assert "TEST_SECRET" in err
    assert "short-secret-value" not in err


@pytest.mark.parametrize(
    ("algorithms", "length", "refusal"),
    [
        ('["HS384"]', 47, "shorter than 48 bytes, the least HS384 takes"),
        ('["HS384"]', 48, None),
        ('["HS256", "HS512"]', 63, "shorter than 64 bytes, the least HS512 takes"),
        ('["HS512"]', 64, None),
    ],
)
def test_an_hs_secret_is_at_least_as_long_as_its_hash(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    algorithms: str,
    length: int,
    refusal: str | None,
) -> None:
    """HS384 needs a 48-byte secret, HS512 64 (RFC 7518 §3.2): the longest hash an issuer allows decides."""
    monkeypatch.setenv("TEST_SECRET", "x" * length)
    path = _write(tmp_path, BASE.replace('algorithms = ["HS256"]', f"algorithms = {algorithms}"))
    assert main(["check-config", str(path)]) == (0 if refusal is None else 2)
    err = capsys.readouterr().err
    if refusal is None:
        assert err == ""
    else:
        assert err == (
            f"livetoken: configuration error: issuers[0].hs256_secret_env: the secret in TEST_SECRET is {refusal}\n"
        )


def test_secret_from_file_and_env_both_set_is_refused(tmp_path: Path) -> None:
    """Setting a secret both directly and as _FILE is ambiguous and refused."""
    cfg = load_file_config(_write(tmp_path, BASE))
    secret_file = tmp_path / "key"
    secret_file.write_text("k")
    env = {
        "TEST_SECRET": GOOD_SECRET,
        "LIVETOKEN_GEMINI_API_KEY": "a",
        "LIVETOKEN_GEMINI_API_KEY_FILE": str(secret_file),
    }
    with pytest.raises(ConfigError, match="LIVETOKEN_GEMINI_API_KEY"):
        load_env(env, cfg)


def test_an_api_key_with_a_line_break_inside_is_refused_without_echoing_it(tmp_path: Path) -> None:
    """A key is one printable word: surrounding whitespace (an .env file's \\r\\n) is dropped, a break inside
    would split the request to Google and is refused at start-up, naming the variable and not the value."""
    cfg = load_file_config(_write(tmp_path, BASE))
    env = load_env({"TEST_SECRET": GOOD_SECRET, "LIVETOKEN_GEMINI_API_KEY": "AIza-key\r\n"}, cfg)
    assert env.gemini_api_key is not None
    assert env.gemini_api_key.reveal() == "AIza-key"
    with pytest.raises(ConfigError) as refused:
        load_env({"TEST_SECRET": GOOD_SECRET, "LIVETOKEN_GEMINI_API_KEY": "AIza-key\r\nX-Evil: 1"}, cfg)
    assert str(refused.value) == "LIVETOKEN_GEMINI_API_KEY: holds a space or a control character; a key has none"


def test_api_key_file_is_read(tmp_path: Path) -> None:
    """LIVETOKEN_GEMINI_API_KEY_FILE supplies the key (Kubernetes/Docker secrets style) and it stays hidden in repr."""
    cfg = load_file_config(_write(tmp_path, BASE))
    secret_file = tmp_path / "key"
    key = "AIzaSyD-file-key-" + "x" * 22
    secret_file.write_text(key + "\n")
    env = load_env({"TEST_SECRET": GOOD_SECRET, "LIVETOKEN_GEMINI_API_KEY_FILE": str(secret_file)}, cfg)
    assert env.gemini_api_key is not None
    assert env.gemini_api_key.reveal() == key
    assert "AIza" not in repr(env)


def test_check_config_subprocess_ok_and_bad(tmp_path: Path) -> None:
    """The real CLI, as a user runs it: OK for the example, exit 2 with the key named for a bad file."""
    exe = [sys.executable, "-m", "service.cli"]
    ok = subprocess.run([*exe, "check-config", "--no-env", str(EXAMPLE)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    bad = _write(tmp_path, BASE + "bogus = true\n")
    res = subprocess.run([*exe, "check-config", "--no-env", str(bad)], capture_output=True, text=True, check=False)
    assert res.returncode == 2
    assert res.stderr == "livetoken: configuration error: profiles.voice.bogus: unknown key\n"


# What a user reads for each kind of field constraint: the key, then the rule in words (not msgspec's terms).
READABLE_MESSAGES = [
    pytest.param(BASE + "uses = 1001\n", "profiles.voice.uses: must be at most 1000", id="int-upper-bound"),
    pytest.param(BASE + 'uses = "x"\n', "profiles.voice.uses: expected an integer, got a string", id="wrong-type"),
    pytest.param(BASE + "temperature = 3\n", "profiles.voice.temperature: must be at most 2", id="float-bound"),
    pytest.param(BASE + "[server]\nport = 0\n", "server.port: must be at least 1", id="port-zero"),
    pytest.param(
        BASE + "[server]\nmax_body_bytes = 100\n", "server.max_body_bytes: must be at least 256", id="body-bound"
    ),
    pytest.param(
        BASE + "[server]\nmax_in_flight = 0\n", "server.max_in_flight: must be at least 1", id="in-flight-bound"
    ),
    pytest.param(
        BASE + '[server]\nqueue_timeout = "31s"\n',
        "server.queue_timeout: must be at most 30s",
        id="queue-timeout-bound",
    ),
    pytest.param(
        BASE.replace("https://idp.test/", "https://login.microsoftonline.com/{tenantid}/v2.0"),
        "issuers[0].issuer: a pattern is not accepted (the issuer picks the keys and the rules, so a pattern would "
        "let every tenant's users in); list one [[issuers]] per tenant",
        id="issuer-pattern",
    ),
    pytest.param(
        BASE.replace("https://idp.test/", "firebase-app-check"),
        "issuers[0].issuer: 'firebase-app-check' names anonymous App Check callers; use the issuer's URL",
        id="issuer-reserved",
    ),
    pytest.param(
        BASE + "require_app_check = true\n",
        "profiles.voice.require_app_check: needs an [app_check] section with your Firebase project_number",
        id="app-check-unconfigured",
    ),
    pytest.param(
        BASE + "anonymous = true\n",
        "profiles.voice.anonymous: anonymous callers are let in on App Check alone; set require_app_check",
        id="anonymous-without-app-check",
    ),
    pytest.param(
        BASE + 'anonymous = true\nrequire_app_check = true\nrequire = { scopes = ["a"] }\n[app_check]\n'
        'project_number = "42"\n',
        "profiles.voice.require: anonymous callers hold no scopes or claims; drop require or anonymous",
        id="anonymous-with-require",
    ),
    pytest.param(
        BASE + '[app_check]\nproject_number = "my-project"\n',
        "app_check.project_number: your Firebase project's number (digits, in its Project settings), not its id",
        id="app-check-project-number",
    ),
    pytest.param(
        BASE + "[upstream]\nwarm_connections = 1001\n",
        "upstream.warm_connections: must be at most 1000",
        id="warm-connections-bound",
    ),
    pytest.param(
        BASE + '[limits]\nfail_mode = "maybe"\n', "limits.fail_mode: 'maybe' is not one of closed, open", id="enum"
    ),
    pytest.param(
        BASE + '[limits]\nredis_timeout = "6s"\n', "limits.redis_timeout: must be at most 5s", id="duration-bound"
    ),
    pytest.param(
        BASE + "[limits]\nredis_timeout = 0\n", "limits.redis_timeout: must be more than 0", id="zero-timeout"
    ),
    pytest.param(
        BASE + "[[limits.subject]]\nrate = 1\nperiod = 0\n",
        "limits.subject[0].period: must be more than 0",
        id="duration-bound-in-list",
    ),
    pytest.param(
        BASE + "[[limits.global]]\nrate = 1\nburst = 0\n", "limits.global[0].burst: must be at least 1", id="global"
    ),
    pytest.param(BASE + 'session_ttl = "20h"\n', "profiles.voice.session_ttl: must be less than 20h", id="ttl-20h"),
    pytest.param(
        BASE + 'new_session_ttl = "16m"\n',
        "profiles.voice.new_session_ttl: must be at most session_ttl (15m)",
        id="new-session-ttl-over-ttl",
    ),
    pytest.param(
        BASE.replace('audiences = ["livetoken"]', "audiences = []"),
        "issuers[0].audiences: must list at least 1 item",
        id="empty-list",
    ),
    pytest.param(
        BASE.replace('audiences = ["livetoken"]', 'audiences = ["livetoken", ""]'),
        "issuers[0].audiences[1]: must not be empty",
        id="empty-string-in-list",
    ),
    pytest.param(
        BASE.replace('algorithms = ["HS256"]', 'algorithms = ["none"]'),
        "issuers[0].algorithms[0]: 'none' is not one of ES256, ES384, ES512, EdDSA, HS256, HS384, HS512, PS256, PS384,"
        " PS512, RS256, RS384, RS512",
        id="alg-none",
    ),
    pytest.param(
        BASE.replace("[profiles.voice]", "[profiles.Voice]"),
        "profiles.Voice: must be lowercase letters, digits, '-' and '_', starting with a letter or digit",
        id="profile-name",
    ),
    pytest.param(
        BASE.replace("[profiles.voice]", f"[profiles.{'v' * 64}]"),
        f"profiles.{'v' * 64}: must be at most 63 characters long",
        id="profile-name-too-long",
    ),
    pytest.param(
        BASE + '[[profiles.voice.tools]]\nname = "get weather"\n',
        "profiles.voice.tools[0].name: must be letters, digits, '_', '.' and '-' (at most 64), starting with a letter"
        " or '_'",
        id="tool-name",
    ),
    pytest.param(
        BASE.replace('voice = "Puck"', 'response_modalities = ["AUDIO", "TEXT"]'),
        "profiles.voice.response_modalities: must list at most 1 item",
        id="two-modalities",
    ),
    pytest.param(
        BASE + '[server]\ncors_allow_origins = ["https://app.example/"]\n',
        "server.cors_allow_origins[0]: must be an origin such as https://app.example or http://localhost:5173"
        " (no path), or *",
        id="origin",
    ),
    pytest.param('[profiles.voice]\nmodel = "m"\n', "issuers: required key is missing", id="no-issuers"),
    pytest.param(
        BASE.split("[profiles.voice]", maxsplit=1)[0] + "[profiles]\n",
        "profiles: must have at least 1 entry",
        id="no-profiles",
    ),
]


@pytest.mark.parametrize(("text", "expected"), READABLE_MESSAGES)
def test_constraint_messages_read_well(tmp_path: Path, text: str, expected: str) -> None:
    """A field constraint fails with the dotted key and the rule in plain words, exactly."""
    with pytest.raises(ConfigError) as caught:
        load_file_config(_write(tmp_path, text))
    assert str(caught.value) == expected


def _env_error(tmp_path: Path, **env: str) -> str:
    """The message load_env gives for BASE with these variables (and a good issuer secret)."""
    cfg = load_file_config(_write(tmp_path, BASE))
    with pytest.raises(ConfigError) as caught:
        load_env({"TEST_SECRET": GOOD_SECRET, "LIVETOKEN_GEMINI_API_KEY": "k", **env}, cfg)
    return str(caught.value)


BAD_REDIS_URLS = [
    ("redis://127.0.0.1:notaport/0", "port 'notaport' is not a number"),
    ("redis://127.0.0.1:99999/0", "port 99999 is not between 1 and 65535"),
    ("redis://127.0.0.1:0/0", "port 0 is not between 1 and 65535"),
    ("redis://[::1:6390/0", "host '[::1:6390' is missing its closing ']'"),
    ("redis://[fe80::zz]:6390/0", "host '[fe80::zz]' is not an IPv6 address"),
    ("redis://::1:6390/0", "an IPv6 host must be in brackets, such as [::1]"),
    ("redis://h:6379/abc", "database 'abc' is not a number"),
    ("redis://h:6379/0?db=x", "database 'x' is not a number"),
    ("redis://h:6379/0?socket_timeout=soon", "Invalid value for 'socket_timeout' in connection URL."),
    ("redis://", "names no host, e.g. redis://HOST:6379/0"),
    ("redis://:hunter2@/0", "names no host, e.g. redis://HOST:6379/0"),
    ("redis://h:6379 /0", "must not contain spaces"),
    ("redis://:hunt/er2@h:6379/0", "percent-encode the password: a '/', '?' or '#' in it cuts the URL short"),
    ("http://h:6379/0", "must start with redis://, rediss:// or unix://"),
    ("unix://", "unix:// needs the socket's absolute path, e.g. unix:///run/redis/redis.sock"),
    ("unix:///run/redis.sock?db=one", "database 'one' is not a number"),
]


@pytest.mark.parametrize(("url", "message"), BAD_REDIS_URLS)
def test_bad_redis_url_is_refused(tmp_path: Path, url: str, message: str) -> None:
    """A Redis URL that redis-py would reject, or silently misread, is refused at load naming the variable."""
    assert _env_error(tmp_path, LIVETOKEN_REDIS_URL=url) == f"LIVETOKEN_REDIS_URL: {message}"


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://redis",
        "rediss://:pw@cache.example:6380/2",
        "redis://user:p%40ss@[::1]:6390/15",
        "redis://h:6379?db=3&socket_timeout=0.5",
        "unix:///run/redis/redis.sock?db=1",
    ],
)
def test_good_redis_url_is_accepted(tmp_path: Path, url: str) -> None:
    """The Redis URL forms redis-py documents load unchanged."""
    cfg = load_file_config(_write(tmp_path, BASE))
    env = load_env({"TEST_SECRET": GOOD_SECRET, "LIVETOKEN_GEMINI_API_KEY": "k", "LIVETOKEN_REDIS_URL": url}, cfg)
    assert env.redis_url is not None
    assert env.redis_url.reveal() == url


def test_redis_password_is_never_shown(tmp_path: Path) -> None:
    """An error about a Redis URL names the variable and the bad part, never the password in it."""
    message = _env_error(tmp_path, LIVETOKEN_REDIS_URL="redis://admin:hunter2@cache:port/0")
    assert message == "LIVETOKEN_REDIS_URL: port 'port' is not a number"
    message = _env_error(tmp_path, LIVETOKEN_REDIS_URL="redis://admin:hunter2@cache:6379/zero")
    assert "hunter2" not in message


BAD_BASE_URLS = [
    ("https://", "names no host"),
    ("https://host/path?x", "must not have a query string ('?...')"),
    ("https://host/#top", "must not have a fragment ('#...')"),
    ("ftp://host", "must be an http:// or https:// URL"),
    ("generativelanguage.googleapis.com", "must be an http:// or https:// URL"),
    ("https://gen language.example", "must not contain spaces"),
    ("https://host:99999", "port 99999 is not between 1 and 65535"),
    ("https://host:https", "port 'https' is not a number"),
    ("https://[::1", "host '[::1' is missing its closing ']'"),
    ("https://key:hunter2@host", "must not carry a user name or password"),
]


@pytest.mark.parametrize(("url", "message"), BAD_BASE_URLS)
def test_bad_gemini_base_url_is_refused(tmp_path: Path, url: str, message: str) -> None:
    """A base URL the SDK could not use is refused at load, naming the variable (and never a password in it)."""
    assert _env_error(tmp_path, LIVETOKEN_GEMINI_BASE_URL=url) == f"LIVETOKEN_GEMINI_BASE_URL: {message}"


@pytest.mark.parametrize(
    "url", ["https://generativelanguage.googleapis.com", "http://127.0.0.1:9443", "https://[::1]:9443/", "https://p/g"]
)
def test_good_gemini_base_url_is_accepted(tmp_path: Path, url: str) -> None:
    """Google's URL, the emulator's, and a proxy with a path prefix all load."""
    cfg = load_file_config(_write(tmp_path, BASE))
    env = load_env({"TEST_SECRET": GOOD_SECRET, "LIVETOKEN_GEMINI_API_KEY": "k", "LIVETOKEN_GEMINI_BASE_URL": url}, cfg)
    assert env.gemini_base_url == url


def _pem_issuer(path: Path, alg: str = "RS256") -> str:
    return BASE.replace('hs256_secret_env = "TEST_SECRET"', f'public_key_file = "{path}"').replace("HS256", alg)


def _public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(
    ("alg", "key"),
    [
        ("RS256", rsa.generate_private_key(65537, 2048)),
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
    ],
    ids=["rsa", "ec", "ed25519"],
)
def test_public_key_file_is_loaded(
    tmp_path: Path, alg: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
) -> None:
    """RSA, EC and Ed25519 public keys in PEM pass the load-time check."""
    pem = tmp_path / "issuer.pem"
    pem.write_bytes(_public_pem(key))
    cfg = load_file_config(_write(tmp_path, _pem_issuer(pem, alg)))
    assert load_env({"LIVETOKEN_GEMINI_API_KEY": "k"}, cfg).issuer_secrets == {}


def test_public_key_file_that_is_not_a_public_key_is_refused(tmp_path: Path) -> None:
    """A private key, a certificate, another key type or garbage in public_key_file is refused at load, by key."""
    ca_file, cert_file, key_file = ensure_certificates(tmp_path)
    dsa_file = tmp_path / "dsa.pem"
    dsa_file.write_bytes(
        dsa.generate_private_key(2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    expected = {
        key_file: f"{str(key_file)!r} holds a private key; give the issuer's public key",
        cert_file: f"{str(cert_file)!r} holds a certificate, not a public key (extract the key with"
        " openssl x509 -pubkey -noout)",
        dsa_file: f"{str(dsa_file)!r} holds a DSA key; JWT issuers sign with RSA, EC or Ed25519 keys",
        garbage: f"{str(garbage)!r} is not a PEM public key",
        tmp_path / "missing.pem": f"no such file {str(tmp_path / 'missing.pem')!r}",
    }
    for path, message in expected.items():
        cfg = load_file_config(_write(tmp_path, _pem_issuer(path)))
        with pytest.raises(ConfigError) as caught:
            load_env({"LIVETOKEN_GEMINI_API_KEY": "k"}, cfg)
        assert str(caught.value) == f"issuers[0].public_key_file: {message}"
    assert ca_file.is_file()


def test_gemini_ca_file_must_hold_a_certificate(tmp_path: Path) -> None:
    """LIVETOKEN_GEMINI_CA_FILE is loaded as a CA bundle at start-up: a certificate passes, a key or garbage fails."""
    ca_file, _cert, key_file = ensure_certificates(tmp_path)
    cfg = load_file_config(_write(tmp_path, BASE))
    env = load_env(
        {"TEST_SECRET": GOOD_SECRET, "LIVETOKEN_GEMINI_API_KEY": "k", "LIVETOKEN_GEMINI_CA_FILE": str(ca_file)}, cfg
    )
    assert env.gemini_ca_file == str(ca_file)
    for bad in (key_file, _write(tmp_path, "not a certificate")):
        message = _env_error(tmp_path, LIVETOKEN_GEMINI_CA_FILE=str(bad))
        assert message == f"LIVETOKEN_GEMINI_CA_FILE: {str(bad)!r} holds no PEM certificate"
    missing = str(tmp_path / "missing.pem")
    assert (
        _env_error(tmp_path, LIVETOKEN_GEMINI_CA_FILE=missing) == f"LIVETOKEN_GEMINI_CA_FILE: no such file {missing!r}"
    )


def test_secret_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    """A binary file named by a _FILE variable is a one-line error, not a UnicodeDecodeError traceback."""
    binary = tmp_path / "key.bin"
    binary.write_bytes(b"\xff\xfe\x00key")
    message = _env_error(tmp_path, LIVETOKEN_GEMINI_API_KEY="", LIVETOKEN_GEMINI_API_KEY_FILE=str(binary))
    assert message == f"LIVETOKEN_GEMINI_API_KEY_FILE: {str(binary)!r} is not UTF-8 text"


def test_check_config_and_serve_report_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad environment variable is the same one line, exit 2, from `check-config` and from `serve`."""
    monkeypatch.setenv("TEST_SECRET", GOOD_SECRET)
    monkeypatch.setenv("LIVETOKEN_GEMINI_API_KEY", "k")
    monkeypatch.setenv("LIVETOKEN_REDIS_URL", "redis://:hunter2@h:6379/abc")
    path = _write(tmp_path, BASE)
    assert main(["check-config", str(path)]) == 2
    assert main(["serve", "--config", str(path)]) == 2
    line = "livetoken: configuration error: LIVETOKEN_REDIS_URL: database 'abc' is not a number\n"
    assert capsys.readouterr().err == line * 2
