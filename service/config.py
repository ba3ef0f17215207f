"""Settings: one TOML file for structure, the environment for secrets and endpoints.

Everything is validated once, at start-up; a bad value raises `ConfigError` whose message names the key.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import msgspec

MAX_TOKEN_TTL = 20 * 3600.0  # Google refuses expire times 20 h or more in the future.
HS_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
MIN_HS_SECRET_BYTES = 32
# Written once, used by the config checks and the API's request type (and so the OpenAPI document).
PROFILE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
VOICE_NAME_PATTERN = r"^[A-Za-z]+$"

# Voices documented for the Live API (shared/LIVE_API_PROTOCOL.md); a profile may only name these.
KNOWN_VOICES = frozenset(
    [
        "Zephyr",
        "Puck",
        "Charon",
        "Kore",
        "Fenrir",
        "Leda",
        "Orus",
        "Aoede",
        "Callirrhoe",
        "Autonoe",
        "Enceladus",
        "Iapetus",
        "Umbriel",
        "Algieba",
        "Despina",
        "Erinome",
        "Algenib",
        "Rasalgethi",
        "Laomedeia",
        "Achernar",
        "Alnilam",
        "Schedar",
        "Gacrux",
        "Pulcherrima",
        "Achird",
        "Zubenelgenubi",
        "Vindemiatrix",
        "Sadachbia",
        "Sadaltager",
        "Sulafat",
    ]
)


class ConfigError(Exception):
    """The configuration is invalid; the message names the offending key."""


class Duration(float):
    """Seconds, written in TOML as a number or a string such as "250ms", "60s", "15m", "2h"."""

    _PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
    _UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

    @classmethod
    def parse(cls, value: object) -> Duration:
        """Turn a TOML value into seconds or raise ValueError."""
        if isinstance(value, bool):
            raise ValueError('expected a duration such as 60, "60s" or "15m"')
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and (m := cls._PATTERN.match(value)):
            seconds = float(m.group(1)) * cls._UNITS[m.group(2)]
        else:
            raise ValueError('expected a duration such as 60, "60s" or "15m"')
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("a duration must be a finite, non-negative number of seconds")
        return cls(seconds)


def _dec_hook(typ: type, obj: Any) -> Any:
    if typ is Duration:
        return Duration.parse(obj)
    raise NotImplementedError(f"cannot read {typ!r}")


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base for every config table: an unknown key is an error, not silently ignored."""


class LimitRule(_Strict, frozen=True):
    """One GCRA rule: `rate` requests per `period`, with bursts of up to `burst` at once."""

    rate: int
    period: Duration = Duration(60)
    burst: int | None = None

    @property
    def effective_burst(self) -> int:
        """Burst size; defaults to the rate."""
        return self.burst if self.burst is not None else self.rate


class LimitsConfig(_Strict, frozen=True):
    """`[limits]`: layered rate limits and what to do when Redis is unavailable."""

    subject: list[LimitRule] = msgspec.field(default_factory=lambda: [LimitRule(rate=10, period=Duration(60), burst=5)])
    tenant: list[LimitRule] = msgspec.field(default_factory=list)
    global_: list[LimitRule] = msgspec.field(default_factory=list, name="global")
    fail_mode: Literal["closed", "open"] = "closed"
    redis_timeout: Duration = Duration(0.25)
    redis_cluster: bool = False
    key_prefix: str = "livetoken"


class IssuerConfig(_Strict, frozen=True):
    """`[[issuers]]`: one trusted JWT issuer."""

    issuer: str
    audiences: list[str]
    algorithms: list[str]
    jwks_url: str | None = None
    public_key_file: str | None = None
    hs256_secret_env: str | None = None
    leeway: Duration = Duration(30)
    max_token_age: Duration | None = None
    subject_claim: str = "sub"
    tenant_claim: str | None = None
    scopes_claim: str = "scope"
    jwks_cache_ttl: Duration = Duration(600)
    jwks_refresh_cooldown: Duration = Duration(30)
    jwks_timeout: Duration = Duration(2)
    jwks_max_stale: Duration = Duration(86400)


class FunctionDeclaration(_Strict, frozen=True):
    """A tool the model may call; `parameters` is an OpenAPI-style schema as Google accepts it."""

    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None


class RequireRule(_Strict, frozen=True):
    """Claims a caller must hold to use a profile."""

    scopes: list[str] = msgspec.field(default_factory=list)
    claims: dict[str, str | list[str]] = msgspec.field(default_factory=dict)


class ProfileConfig(_Strict, frozen=True):
    """`[profiles.NAME]`: one locked Live session shape that callers may request tokens for."""

    model: str
    description: str = ""
    response_modalities: list[Literal["AUDIO", "TEXT"]] = msgspec.field(default_factory=lambda: ["AUDIO"])
    voice: str | None = None
    allowed_voices: list[str] = msgspec.field(default_factory=list)
    system_instruction: str | None = None
    temperature: float | None = None
    tools: list[FunctionDeclaration] = msgspec.field(default_factory=list)
    input_audio_transcription: bool = False
    output_audio_transcription: bool = False
    session_resumption: bool = True
    context_window_compression: bool = False
    session_ttl: Duration | None = None
    new_session_ttl: Duration = Duration(60)
    uses: int = 1
    require: RequireRule | None = None
    limits: list[LimitRule] = msgspec.field(default_factory=list)

    @property
    def modality(self) -> Literal["AUDIO", "TEXT"]:
        """The profile's single response modality."""
        return self.response_modalities[0]

    @property
    def effective_session_ttl(self) -> float:
        """expire_time offset: the configured one, else 15 min for audio and 30 min (Google's) for text."""
        if self.session_ttl is not None:
            return float(self.session_ttl)
        return 900.0 if self.modality == "AUDIO" else 1800.0


class ServerConfig(_Strict, frozen=True):
    """`[server]`: the HTTP listener and request-level bounds."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 8192
    request_timeout: Duration = Duration(10)
    idempotency_ttl: Duration = Duration(600)
    shutdown_grace: Duration = Duration(10)
    cors_allow_origins: list[str] = msgspec.field(default_factory=list)
    max_in_flight: int = 256  # token requests this process works on at once; more get a fast 503 overloaded


class UpstreamConfig(_Strict, frozen=True):
    """`[upstream]`: how hard to try Google before giving up."""

    attempt_timeout: Duration = Duration(5)
    deadline: Duration = Duration(8)
    max_retries: int = 2
    backoff_base: Duration = Duration(0.1)
    circuit_failure_threshold: int = 5
    circuit_reset_after: Duration = Duration(10)
    warm_connections: int = 32  # upstream connections opened (TLS done) before the process says it is ready


class FileConfig(_Strict, frozen=True):
    """The whole TOML document."""

    issuers: list[IssuerConfig]
    profiles: dict[str, ProfileConfig]
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    upstream: UpstreamConfig = msgspec.field(default_factory=UpstreamConfig)


class Secret:
    """A string that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value; call only where it is sent to its one legitimate destination."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class EnvConfig:
    """Secrets and endpoints from the environment."""

    gemini_api_key: Secret | None
    gemini_base_url: str | None
    gemini_ca_file: str | None
    redis_url: Secret | None
    log_format: Literal["json", "console"] | None
    log_level: str
    issuer_secrets: Mapping[str, Secret] = field(default_factory=dict)
    cors_allow_origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    """Everything the app needs, validated."""

    file: FileConfig
    env: EnvConfig
    dev_mode: bool = False
    config_path: str | None = None
    demo_dir: str | None = None  # dev mode only: the built browser example, served at /demo/

    @property
    def profiles(self) -> dict[str, ProfileConfig]:
        """Profiles by name."""
        return self.file.profiles

    def with_cors_origins(self, origins: list[str]) -> Settings:
        """These settings with more browser origins (`serve --cors-origin`), each checked like the others."""
        for origin in origins:
            check_origin(origin, "--cors-origin")
        env = replace(self.env, cors_allow_origins=(*self.env.cors_allow_origins, *origins))
        return replace(self, env=env)

    @property
    def cors_allow_origins(self) -> tuple[str, ...]:
        """Browser origins from the file, the environment and `serve --cors-origin` (dev mode adds local ones)."""
        return (*self.file.server.cors_allow_origins, *self.env.cors_allow_origins)


_ORIGIN = re.compile(r"https?://[^\s/?#@]+")


def check_origin(origin: str, where: str) -> None:
    """A browser origin as browsers send it: scheme://host[:port], no path or trailing slash; or `*` for any."""
    if origin != "*" and not _ORIGIN.fullmatch(origin):
        raise ConfigError(f"{where}: {origin!r} is not an origin such as https://app.example or http://localhost:5173")


def _path_of(err: msgspec.ValidationError) -> str:
    """Turn msgspec's `... - at `$.profiles.x.voice`` into `profiles.x.voice`."""
    msg = str(err)
    m = re.search(r"at `\$(.*)`", msg)
    return m.group(1).lstrip(".") if m else ""


def _convert(data: Any, typ: type[Any], prefix: str) -> Any:
    """msgspec.convert with errors rewritten to name the key as a dotted path."""
    try:
        return msgspec.convert(data, typ, dec_hook=_dec_hook, strict=True)
    except msgspec.ValidationError as err:
        text = str(err)
        where = ".".join(part for part in (prefix, _path_of(err)) if part).replace(".[", "[")
        for pattern, what in (
            (r"Object contains unknown field `([^`]+)`", "unknown key"),
            (r"Object missing required field `([^`]+)`", "required key is missing"),
        ):
            if m := re.match(pattern, text):
                key = f"{where}.{m.group(1)}" if where else m.group(1)
                raise ConfigError(f"{key}: {what}") from None
        raise ConfigError(f"{where or '(top level)'}: {text.split(' - at `', maxsplit=1)[0]}") from None


def parse_file_config(data: Mapping[str, Any]) -> FileConfig:
    """Convert a parsed TOML mapping to a validated FileConfig."""
    profiles = data.get("profiles")
    if isinstance(profiles, Mapping):
        # Converted one by one so an error names the profile (msgspec writes dict keys as `[...]`).
        converted = {name: _convert(raw, ProfileConfig, f"profiles.{name}") for name, raw in profiles.items()}
        data = {**data, "profiles": {}}
        cfg: FileConfig = _convert(data, FileConfig, "")
        cfg = msgspec.structs.replace(cfg, profiles=converted)
    else:
        cfg = _convert(data, FileConfig, "")
    _validate(cfg)
    return cfg


def _validate_rules(rules: list[LimitRule], where: str) -> None:
    for i, rule in enumerate(rules):
        key = f"{where}[{i}]"
        if rule.rate < 1:
            raise ConfigError(f"{key}.rate: must be at least 1")
        if rule.period <= 0:
            raise ConfigError(f"{key}.period: must be longer than zero")
        if rule.burst is not None and rule.burst < 1:
            raise ConfigError(f"{key}.burst: must be at least 1")


def _validate_issuer(i: int, iss: IssuerConfig) -> None:
    key = f"issuers[{i}]"
    if not iss.issuer:
        raise ConfigError(f"{key}.issuer: must not be empty")
    if not iss.audiences or not all(iss.audiences):
        raise ConfigError(f"{key}.audiences: list at least one non-empty audience")
    if not iss.algorithms:
        raise ConfigError(f"{key}.algorithms: list at least one algorithm")
    for alg in iss.algorithms:
        if alg not in HS_ALGORITHMS | ASYMMETRIC_ALGORITHMS:
            raise ConfigError(f"{key}.algorithms: {alg!r} is not an allowed algorithm")
    algs = set(iss.algorithms)
    sources = [name for name in ("jwks_url", "public_key_file", "hs256_secret_env") if getattr(iss, name) is not None]
    if len(sources) != 1:
        raise ConfigError(
            f"{key}: set exactly one key source of jwks_url, public_key_file, hs256_secret_env"
            f" (found {len(sources)}{': ' + ', '.join(sources) if sources else ''})"
        )
    if iss.hs256_secret_env is not None and not algs <= HS_ALGORITHMS:
        raise ConfigError(f"{key}.algorithms: an hs256_secret_env issuer may only allow HS256/HS384/HS512")
    if iss.hs256_secret_env is None and algs & HS_ALGORITHMS:
        raise ConfigError(f"{key}.algorithms: HS algorithms need hs256_secret_env; never mix them with public keys")
    if iss.jwks_url is not None and not iss.jwks_url.startswith(("https://", "http://")):
        raise ConfigError(f"{key}.jwks_url: must be an http(s) URL")
    if iss.leeway > 300:
        raise ConfigError(f"{key}.leeway: at most 300 seconds")
    if not iss.subject_claim:
        raise ConfigError(f"{key}.subject_claim: must not be empty")


def _validate_profile(name: str, p: ProfileConfig) -> None:
    key = f"profiles.{name}"
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", name):
        raise ConfigError(f"{key}: profile names are lowercase letters, digits, '-' and '_' (max 63)")
    if not p.model or "/" in p.model.removeprefix("models/"):
        raise ConfigError(f"{key}.model: give a model name such as gemini-2.5-flash-native-audio-preview-12-2025")
    if len(p.response_modalities) != 1:
        raise ConfigError(f"{key}.response_modalities: choose exactly one of AUDIO or TEXT, not both")
    for voice in [*([p.voice] if p.voice else []), *p.allowed_voices]:
        if voice not in KNOWN_VOICES:
            raise ConfigError(f"{key}.voice: {voice!r} is not a Live API voice")
    if p.allowed_voices and p.voice is None:
        raise ConfigError(f"{key}.voice: allowed_voices needs a default voice")
    if p.allowed_voices and p.voice not in p.allowed_voices:
        raise ConfigError(f"{key}.allowed_voices: must include the default voice {p.voice!r}")
    if p.modality == "TEXT" and (p.voice or p.allowed_voices):
        raise ConfigError(f"{key}.voice: a TEXT profile has no voice")
    ttl = p.effective_session_ttl
    if ttl <= 0 or ttl >= MAX_TOKEN_TTL:
        raise ConfigError(f"{key}.session_ttl: must be more than 0 and under 20h")
    if p.new_session_ttl <= 0 or p.new_session_ttl > ttl:
        raise ConfigError(f"{key}.new_session_ttl: must be more than 0 and at most session_ttl")
    if p.uses < 0 or p.uses > 1000:
        raise ConfigError(f"{key}.uses: must be between 0 (unlimited) and 1000")
    if p.temperature is not None and not 0.0 <= p.temperature <= 2.0:
        raise ConfigError(f"{key}.temperature: must be between 0 and 2")
    names = [t.name for t in p.tools]
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}.tools: function names must be unique")
    for t in p.tools:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", t.name):
            raise ConfigError(f"{key}.tools: {t.name!r} is not a valid function name")
    if p.require is not None:
        if not p.require.scopes and not p.require.claims:
            raise ConfigError(f"{key}.require: the rule names no scope or claim; drop it or fill it in")
        if any(not s for s in p.require.scopes):
            raise ConfigError(f"{key}.require.scopes: scopes must not be empty strings")
        for claim, want in p.require.claims.items():
            if not claim or want in ("", []):
                raise ConfigError(f"{key}.require.claims.{claim}: names no value")
    _validate_rules(p.limits, f"{key}.limits")


def _validate(cfg: FileConfig) -> None:
    if not cfg.issuers:
        raise ConfigError("issuers: configure at least one [[issuers]] table")
    if not cfg.profiles:
        raise ConfigError("profiles: configure at least one [profiles.NAME] table")
    seen: set[str] = set()
    for i, iss in enumerate(cfg.issuers):
        _validate_issuer(i, iss)
        if iss.issuer in seen:
            raise ConfigError(f"issuers[{i}].issuer: {iss.issuer!r} is configured twice")
        seen.add(iss.issuer)
    for name, profile in cfg.profiles.items():
        _validate_profile(name, profile)
    for layer in ("subject", "tenant", "global_"):
        _validate_rules(getattr(cfg.limits, layer), f"limits.{layer.rstrip('_')}")
    if not cfg.limits.subject:
        raise ConfigError("limits.subject: at least one per-subject rule is required")
    if not 0 < cfg.limits.redis_timeout <= 5:
        raise ConfigError("limits.redis_timeout: must be more than 0 and at most 5s")
    for origin in cfg.server.cors_allow_origins:
        check_origin(origin, "server.cors_allow_origins")
    if not 0 < cfg.server.port < 65536:
        raise ConfigError("server.port: must be 1-65535")
    if not 1 <= cfg.server.max_in_flight <= 100_000:
        raise ConfigError("server.max_in_flight: must be between 1 and 100000")
    if not 256 <= cfg.server.max_body_bytes <= 1 << 20:
        raise ConfigError("server.max_body_bytes: must be between 256 and 1048576")
    if cfg.upstream.attempt_timeout <= 0 or cfg.upstream.deadline < cfg.upstream.attempt_timeout:
        raise ConfigError("upstream.deadline: must be at least upstream.attempt_timeout")
    if not 0 <= cfg.upstream.warm_connections <= 1000:
        raise ConfigError("upstream.warm_connections: must be between 0 and 1000")
    if not 0 <= cfg.upstream.max_retries <= 5:
        raise ConfigError("upstream.max_retries: must be between 0 and 5")


def load_file_config(path: str | Path) -> FileConfig:
    """Read and validate a TOML configuration file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_file_config(data)


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
    return Secret(value) if value else None


def load_env(env: Mapping[str, str], file: FileConfig, *, require_api_key: bool = True) -> EnvConfig:
    """Read secrets and endpoints from the environment and check them against the file config."""
    api_key = _env_secret(env, "LIVETOKEN_GEMINI_API_KEY")
    if api_key is None and require_api_key:
        raise ConfigError("LIVETOKEN_GEMINI_API_KEY: not set (or LIVETOKEN_GEMINI_API_KEY_FILE)")
    base_url = env.get("LIVETOKEN_GEMINI_BASE_URL") or None
    if base_url is not None and not base_url.startswith(("https://", "http://")):
        raise ConfigError("LIVETOKEN_GEMINI_BASE_URL: must be an http(s) URL")
    ca_file = env.get("LIVETOKEN_GEMINI_CA_FILE") or None
    if ca_file is not None and not Path(ca_file).is_file():
        raise ConfigError(f"LIVETOKEN_GEMINI_CA_FILE: no such file {ca_file!r}")
    redis_url = _env_secret(env, "LIVETOKEN_REDIS_URL")
    if redis_url is not None and not redis_url.reveal().startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("LIVETOKEN_REDIS_URL: must start with redis://, rediss:// or unix://")
    log_format = env.get("LIVETOKEN_LOG_FORMAT") or None
    if log_format not in (None, "json", "console"):
        raise ConfigError("LIVETOKEN_LOG_FORMAT: must be json or console")
    cors = tuple(o.strip() for o in (env.get("LIVETOKEN_CORS_ALLOW_ORIGINS") or "").split(",") if o.strip())
    for origin in cors:
        check_origin(origin, "LIVETOKEN_CORS_ALLOW_ORIGINS")
    log_level = (env.get("LIVETOKEN_LOG_LEVEL") or "info").lower()
    if log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError("LIVETOKEN_LOG_LEVEL: must be debug, info, warning or error")
    secrets: dict[str, Secret] = {}
    for i, iss in enumerate(file.issuers):
        if iss.hs256_secret_env is None:
            continue
        secret = _env_secret(env, iss.hs256_secret_env)
        if secret is None:
            raise ConfigError(f"issuers[{i}].hs256_secret_env: environment variable {iss.hs256_secret_env} is not set")
        if len(secret.reveal().encode()) < MIN_HS_SECRET_BYTES:
            raise ConfigError(
                f"issuers[{i}].hs256_secret_env: the secret in {iss.hs256_secret_env} is shorter than 32 bytes"
            )
        secrets[iss.issuer] = secret
    for i, iss in enumerate(file.issuers):
        if iss.public_key_file is not None and not Path(iss.public_key_file).is_file():
            raise ConfigError(f"issuers[{i}].public_key_file: no such file {iss.public_key_file!r}")
    return EnvConfig(
        gemini_api_key=api_key,
        gemini_base_url=base_url,
        gemini_ca_file=ca_file,
        redis_url=redis_url,
        log_format=log_format,  # type: ignore[arg-type]  # checked against the Literal just above
        log_level=log_level,
        issuer_secrets=secrets,
        cors_allow_origins=cors,
    )


def load_settings(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    """Load the file at `path` plus the environment into validated Settings."""
    environ = os.environ if env is None else env
    file = load_file_config(path)
    return Settings(file=file, env=load_env(environ, file), dev_mode=False, config_path=str(path))
