"""The environment's secrets and endpoints, each checked where it is read and named by its variable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, TypeVar, cast

from service.config.egress import load_egress
from service.config.endpoints import check_http_url, check_origin, check_redis_url
from service.config.errors import ConfigError
from service.config.keyfile import read_api_key_file
from service.config.model import HS_SECRET_BYTES, MIN_HS_SECRET_BYTES, FileConfig
from service.config.pem import check_ca_file, check_public_key_file
from service.config.secret import Secret
from service.config.settings import EnvConfig

T = TypeVar("T")

# Every variable livetoken reads (name, meaning): the environment reference (docs/reference/environment.md) is made
# from it, and tests/ops/test_docs.py fails when a LIVETOKEN_ name in service/ is missing here. OTEL_* are
# service/tracing/environment.py's.
VARIABLES: tuple[tuple[str, str], ...] = (
    (
        "LIVETOKEN_CONFIG",
        "Path of the TOML configuration file (`serve --config` wins); unset: `serve` starts in dev mode.",
    ),
    (
        "LIVETOKEN_GEMINI_API_KEY",
        "The Gemini API key the mint uses. Required by `serve` with a configuration (or `…_FILE`, not both).",
    ),
    (
        "LIVETOKEN_GEMINI_API_KEY_FILE",
        "A file of Gemini API keys, one a line (blank lines and `#` comments ignored, at most 10): the first is used, "
        "the others are fallbacks when Google refuses a key. Re-read when it changes and on `SIGHUP`.",
    ),
    (
        "LIVETOKEN_GEMINI_BASE_URL",
        "The upstream's base URL (http(s), a host, no query, fragment or credentials); unset: Google "
        "(`https://generativelanguage.googleapis.com`).",
    ),
    (
        "LIVETOKEN_GEMINI_CA_FILE",
        "A PEM CA bundle to trust for the upstream as well (the emulator's), loaded at start-up; unset: the system's "
        "trust store. `livetoken client` trusts it too.",
    ),
    (
        "LIVETOKEN_REDIS_URL",
        "`redis://`, `rediss://` or `unix://` URL of the Redis that holds rate limits, budgets, blocks and "
        "idempotency (host, port and database checked at start-up); unset: the in-memory limiter (one process).",
    ),
    ("LIVETOKEN_REDIS_URL_FILE", "A file holding `LIVETOKEN_REDIS_URL` (it may carry a password); not both."),
    ("LIVETOKEN_LOG_FORMAT", "`json` or `console`; unset: console on a terminal, JSON otherwise."),
    ("LIVETOKEN_LOG_LEVEL", "`debug`, `info` (default), `warning` or `error`."),
    (
        "LIVETOKEN_CORS_ALLOW_ORIGINS",
        "Comma-separated browser origins (`https://app.example`) allowed to call the API, added to "
        "`server.cors_allow_origins` and `serve --cors-origin`.",
    ),
    (
        "LIVETOKEN_STATE_DIR",
        "Dev mode's state directory (the dev JWT secret, the emulator's key, CA and `emulator.json`); default "
        "`./.livetoken/`. Read by `serve`, `dev-jwt`, `emulator` and `client`.",
    ),
    (
        "LIVETOKEN_EMULATOR_API_KEY",
        "The API key `livetoken emulator` accepts (`--api-key` wins); unset: one generated into the state directory.",
    ),
    (
        "LIVETOKEN_DEV_JWT_SECRET",
        "Not read from the environment: the `hs256_secret_env` name dev mode's own issuer gives the secret it keeps "
        "in the state directory.",
    ),
    (
        "HTTPS_PROXY",
        "The forward proxy (`http://[user:password@]proxy:port`) for https calls: the mint to Google and JWKS or "
        "discovery fetches, through a CONNECT tunnel. `https_proxy` wins over it.",
    ),
    ("HTTP_PROXY", "The forward proxy for `http://` JWKS or discovery URLs. `http_proxy` wins over it."),
    (
        "NO_PROXY",
        "Comma-separated hosts reached directly: `*`, host names (with their subdomains), IP addresses, each "
        "optionally `:port`. `no_proxy` wins over it.",
    ),
)


def load_env(env: Mapping[str, str], file: FileConfig, *, require_api_key: bool = True) -> EnvConfig:
    """Read secrets and endpoints from the environment and check them against the file config."""
    api_keys, api_key_file = _gemini_api_keys(env)
    api_key = api_keys[0] if api_keys else None
    if api_key is None and require_api_key:
        raise ConfigError("LIVETOKEN_GEMINI_API_KEY: not set (or LIVETOKEN_GEMINI_API_KEY_FILE)")
    base_url = _checked(env.get("LIVETOKEN_GEMINI_BASE_URL") or None, "LIVETOKEN_GEMINI_BASE_URL", check_http_url)
    ca_file = _checked(env.get("LIVETOKEN_GEMINI_CA_FILE") or None, "LIVETOKEN_GEMINI_CA_FILE", check_ca_file)
    redis_url = _env_secret(env, "LIVETOKEN_REDIS_URL")
    if redis_url is not None:
        _checked(redis_url.reveal(), "LIVETOKEN_REDIS_URL", check_redis_url)
    log_format = env.get("LIVETOKEN_LOG_FORMAT") or None
    if log_format not in (None, "json", "console"):
        raise ConfigError("LIVETOKEN_LOG_FORMAT: must be json or console")
    cors = tuple(o.strip() for o in (env.get("LIVETOKEN_CORS_ALLOW_ORIGINS") or "").split(",") if o.strip())
    for origin in cors:
        check_origin(origin, "LIVETOKEN_CORS_ALLOW_ORIGINS")
    log_level = (env.get("LIVETOKEN_LOG_LEVEL") or "info").lower()
    if log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError("LIVETOKEN_LOG_LEVEL: must be debug, info, warning or error")
    return EnvConfig(
        gemini_api_key=api_key,
        gemini_api_fallback_keys=api_keys[1:],
        gemini_api_key_file=api_key_file,
        gemini_base_url=base_url,
        gemini_ca_file=ca_file,
        redis_url=redis_url,
        log_format=cast(Literal["json", "console"] | None, log_format),  # checked just above
        log_level=log_level,
        issuer_secrets=_issuer_secrets(env, file),
        cors_allow_origins=cors,
        egress=load_egress(env),
    )


def _issuer_secrets(env: Mapping[str, str], file: FileConfig) -> dict[str, Secret]:
    """Each HS issuer's secret by issuer; each public key file loaded once to prove it is one."""
    secrets: dict[str, Secret] = {}
    for i, issuer in enumerate(file.issuers):
        if issuer.public_key_file is not None:
            _checked(issuer.public_key_file, f"issuers[{i}].public_key_file", check_public_key_file)
        if issuer.hs256_secret_env is None:
            continue
        name = issuer.hs256_secret_env
        secret = _env_secret(env, name)
        if secret is None:
            raise ConfigError(f"issuers[{i}].hs256_secret_env: environment variable {name} is not set")
        # A key as long as the hash's output (RFC 7518 §3.2): 32 bytes for HS256, 48 for HS384, 64 for HS512.
        needed = max(MIN_HS_SECRET_BYTES, *(HS_SECRET_BYTES[a] for a in issuer.algorithms if a in HS_SECRET_BYTES))
        if len(secret.reveal().encode()) < needed:
            strongest = max((a for a in issuer.algorithms if a in HS_SECRET_BYTES), key=HS_SECRET_BYTES.__getitem__)
            raise ConfigError(
                f"issuers[{i}].hs256_secret_env: the secret in {name} is shorter than {needed} bytes, "
                f"the least {strongest} takes"
            )
        secrets[issuer.issuer] = secret
    return secrets


def _checked(value: T | None, where: str, check: Callable[[T], object]) -> T | None:
    """`value` once `check` accepts it; its ValueError becomes a ConfigError naming `where`."""
    if value is not None:
        try:
            check(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return value


def _gemini_api_keys(env: Mapping[str, str]) -> tuple[tuple[Secret, ...], str | None]:
    """The API keys (first used, the others fallbacks) and the key file to watch, if they come from one."""
    name = "LIVETOKEN_GEMINI_API_KEY"
    file_name = env.get(f"{name}_FILE")
    if not file_name:
        value = (env.get(name) or "").strip()  # a trailing newline or \r from an .env file is not part of a key
        if any(c.isspace() or not c.isprintable() for c in value):  # it would break the request to Google
            raise ConfigError(f"{name}: holds a space or a control character; a key has none")
        return ((Secret(value),) if value else ()), None
    if env.get(name):
        raise ConfigError(f"{name}: set either {name} or {name}_FILE, not both")
    try:
        return read_api_key_file(file_name), file_name
    except ValueError as exc:
        raise ConfigError(f"{name}_FILE: {exc}") from None


def _env_secret(env: Mapping[str, str], name: str) -> Secret | None:
    """Read NAME or the file named by NAME_FILE."""
    value = env.get(name)
    file_name = env.get(f"{name}_FILE")
    if value and file_name:
        raise ConfigError(f"{name}: set either {name} or {name}_FILE, not both")
    if file_name:
        try:
            value = Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {file_name!r}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{name}_FILE: {file_name!r} is not UTF-8 text") from None
    return Secret(value) if value else None
