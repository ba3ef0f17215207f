"""Settings: one TOML file for structure, the environment for secrets and endpoints.

Everything is validated once, at start-up; a bad value raises `ConfigError` whose message names the key or
variable. `model` is the file's shape with each field's meaning and bounds, `rules` what ties fields together,
`loading` reads the file, `environment` the variables, `endpoints` and `pem` check what they point at.
"""

from service.config.duration import Duration
from service.config.egress import Egress, Proxy
from service.config.endpoints import check_origin
from service.config.environment import load_env
from service.config.errors import ConfigError
from service.config.live_models import model_warnings
from service.config.loading import load_file_config, load_settings, parse_file_config
from service.config.model import (
    ASYMMETRIC_ALGORITHMS,
    HS_ALGORITHMS,
    MAX_TOKEN_TTL,
    MIN_HS_SECRET_BYTES,
    PROFILE_NAME_PATTERN,
    VOICE_NAME_PATTERN,
    ActivityDetection,
    AdminConfig,
    AppCheckConfig,
    BudgetConfig,
    FileConfig,
    FunctionDeclaration,
    IssuerConfig,
    LimitRule,
    LimitsConfig,
    ProfileConfig,
    ProfileName,
    RequireRule,
    ServerConfig,
    UpstreamConfig,
    VoiceName,
)
from service.config.secret import Secret
from service.config.settings import EnvConfig, Settings
from service.config.voices import KNOWN_VOICES

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "HS_ALGORITHMS",
    "KNOWN_VOICES",
    "MAX_TOKEN_TTL",
    "MIN_HS_SECRET_BYTES",
    "PROFILE_NAME_PATTERN",
    "VOICE_NAME_PATTERN",
    "ActivityDetection",
    "AdminConfig",
    "AppCheckConfig",
    "BudgetConfig",
    "ConfigError",
    "Duration",
    "Egress",
    "EnvConfig",
    "FileConfig",
    "FunctionDeclaration",
    "IssuerConfig",
    "LimitRule",
    "LimitsConfig",
    "ProfileConfig",
    "ProfileName",
    "Proxy",
    "RequireRule",
    "Secret",
    "ServerConfig",
    "Settings",
    "UpstreamConfig",
    "VoiceName",
    "check_origin",
    "load_env",
    "load_file_config",
    "load_settings",
    "model_warnings",
    "parse_file_config",
]
