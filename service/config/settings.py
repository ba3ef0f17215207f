"""What the app is built from: the file's structure plus the environment's secrets and endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from service.config.egress import Egress
from service.config.endpoints import check_origin
from service.config.model import FileConfig, ProfileConfig
from service.config.secret import Secret


@dataclass(frozen=True)
class EnvConfig:
    """Secrets and endpoints from the environment."""

    gemini_api_key: Secret | None
    """`LIVETOKEN_GEMINI_API_KEY` (or `…_FILE`); None only where no key is needed (check-config, dev mode)."""
    gemini_base_url: str | None
    """`LIVETOKEN_GEMINI_BASE_URL`: an http(s) URL with a host; None = Google."""
    gemini_ca_file: str | None
    """`LIVETOKEN_GEMINI_CA_FILE`: a PEM CA bundle to trust for the upstream; None = the system's."""
    redis_url: Secret | None
    """`LIVETOKEN_REDIS_URL` (or `…_FILE`), checked but secret (it may hold a password); None = memory limiter."""
    log_format: Literal["json", "console"] | None
    """`LIVETOKEN_LOG_FORMAT`; None = console on a terminal, JSON otherwise."""
    log_level: str
    """`LIVETOKEN_LOG_LEVEL`: debug, info (default), warning or error."""
    issuer_secrets: Mapping[str, Secret] = field(default_factory=dict)
    """HS secrets by issuer, read from each issuer's `hs256_secret_env`."""
    cors_allow_origins: tuple[str, ...] = ()
    """`LIVETOKEN_CORS_ALLOW_ORIGINS` (comma-separated) plus `serve --cors-origin`."""
    gemini_api_fallback_keys: tuple[Secret, ...] = ()
    """The key file's other keys, in order: tried when Google refuses the ones before them."""
    gemini_api_key_file: str | None = None
    """`LIVETOKEN_GEMINI_API_KEY_FILE`, watched for changes (a Secret volume update); None = the key is fixed."""
    egress: Egress = field(default_factory=Egress)
    """`HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`: the proxy each outbound call goes through, if any."""


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
