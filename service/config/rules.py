"""Rules that tie several fields together, so no single field can carry them (those live in `model.py`)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from service.config.duration import format_seconds
from service.config.endpoints import discovery_url_problem
from service.config.errors import ConfigError
from service.config.model import HS_ALGORITHMS, BudgetConfig, FileConfig, IssuerConfig, ProfileConfig, RequireRule

ANONYMOUS_ISSUER = "firebase-app-check"  # the issuer service.auth gives anonymous App Check callers
_KEY_SOURCES = ("discovery", "jwks_url", "public_key_file", "hs256_secret_env")


def check_rules(cfg: FileConfig) -> None:
    """Raise ConfigError, naming the key, for the first cross-field rule `cfg` breaks."""
    seen: set[str] = set()
    for i, issuer in enumerate(cfg.issuers):
        _check_issuer(issuer, f"issuers[{i}]")
        if issuer.issuer in seen:
            raise ConfigError(f"issuers[{i}].issuer: {issuer.issuer!r} is configured twice")
        seen.add(issuer.issuer)
    for name, profile in cfg.profiles.items():
        _check_profile(profile, f"profiles.{name}")
        if profile.require_app_check and cfg.app_check is None:
            raise ConfigError(
                f"profiles.{name}.require_app_check: needs an [app_check] section with your Firebase project_number"
            )
    for i, budget in enumerate(cfg.budgets):
        _check_budget(budget, f"budgets[{i}]", cfg)
    if cfg.admin is not None:
        _check_require(cfg.admin.require, "admin.require")
        known = {issuer.issuer for issuer in cfg.issuers}
        for j, name in enumerate(cfg.admin.issuers):
            if name not in known:
                raise ConfigError(f"admin.issuers[{j}]: {name!r} is not one of [[issuers]]")
    if cfg.app_check is not None and not (
        cfg.app_check.project_number.isascii() and cfg.app_check.project_number.isdigit()
    ):
        raise ConfigError(
            "app_check.project_number: your Firebase project's number (digits, in its Project settings), not its id"
        )
    if cfg.upstream.deadline < cfg.upstream.attempt_timeout:
        raise ConfigError("upstream.deadline: must be at least upstream.attempt_timeout")


def _check_budget(budget: BudgetConfig, key: str, cfg: FileConfig) -> None:
    for j, name in enumerate(budget.profiles):
        if name not in cfg.profiles:
            raise ConfigError(f"{key}.profiles[{j}]: no profile {name!r}")
    if budget.reset_time_zone is not None:
        try:
            ZoneInfo(budget.reset_time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"{key}.reset_time_zone: {budget.reset_time_zone!r} is not an IANA time zone such as Europe/Paris"
            ) from None
        if budget.period % 86400:
            raise ConfigError(f'{key}.period: calendar budgets (reset_time_zone) count whole days, e.g. "1d"')


def _check_issuer(issuer: IssuerConfig, key: str) -> None:
    sources = [name for name in _KEY_SOURCES if getattr(issuer, name) not in (None, False)]
    if len(sources) != 1:
        raise ConfigError(
            f"{key}: set exactly one key source of {', '.join(_KEY_SOURCES)}"
            f" (found {len(sources)}{': ' + ', '.join(sources) if sources else ''})"
        )
    algorithms = set(issuer.algorithms)
    if issuer.hs256_secret_env is not None and not algorithms <= HS_ALGORITHMS:
        raise ConfigError(f"{key}.algorithms: an hs256_secret_env issuer may only allow HS256/HS384/HS512")
    if issuer.hs256_secret_env is None and algorithms & HS_ALGORITHMS:
        raise ConfigError(f"{key}.algorithms: HS algorithms need hs256_secret_env; never mix them with public keys")
    if issuer.issuer == ANONYMOUS_ISSUER:
        raise ConfigError(f"{key}.issuer: {ANONYMOUS_ISSUER!r} names anonymous App Check callers; use the issuer's URL")
    if any(mark in issuer.issuer for mark in ("{", "}", "*")):
        raise ConfigError(
            f"{key}.issuer: a pattern is not accepted (the issuer picks the keys and the rules, so a pattern would "
            "let every tenant's users in); list one [[issuers]] per tenant"
        )
    if issuer.discovery:
        problem = discovery_url_problem(issuer.issuer)
        if problem is not None:
            raise ConfigError(f"{key}.issuer: discovery needs the issuer as an https URL ({problem})")
    for claim, want in issuer.require_claims.items():
        if not claim or want in ("", []):
            raise ConfigError(f"{key}.require_claims.{claim}: names no value")


def _check_profile(profile: ProfileConfig, key: str) -> None:
    if profile.modality == "TEXT" and (profile.voice or profile.allowed_voices):
        raise ConfigError(f"{key}.voice: a TEXT profile has no voice")
    if profile.allowed_voices and profile.voice is None:
        raise ConfigError(f"{key}.voice: allowed_voices needs a default voice")
    if profile.allowed_voices and profile.voice not in profile.allowed_voices:
        raise ConfigError(f"{key}.allowed_voices: must include the default voice {profile.voice!r}")
    ttl = profile.effective_session_ttl
    if profile.new_session_ttl > ttl:
        raise ConfigError(f"{key}.new_session_ttl: must be at most session_ttl ({format_seconds(ttl)})")
    if profile.presentation == "transcript" and not profile.output_audio_transcription:
        raise ConfigError(
            f'{key}.presentation: "transcript" shows the output transcription; set output_audio_transcription = true'
        )
    detection = profile.activity_detection
    if detection is not None and detection.mode == "manual":
        tuned = [
            f
            for f in ("start_sensitivity", "end_sensitivity", "prefix_padding", "silence_duration")
            if getattr(detection, f) is not None
        ]
        if tuned:
            raise ConfigError(
                f'{key}.activity_detection.{tuned[0]}: applies to automatic detection only, not mode = "manual"'
            )
    names = [tool.name for tool in profile.tools]
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}.tools: function names must be unique")
    if profile.require is not None:
        _check_require(profile.require, f"{key}.require")
    if profile.anonymous and not profile.require_app_check:
        raise ConfigError(f"{key}.anonymous: anonymous callers are let in on App Check alone; set require_app_check")
    if profile.anonymous and profile.require is not None:
        raise ConfigError(f"{key}.require: anonymous callers hold no scopes or claims; drop require or anonymous")


def _check_require(rule: RequireRule, key: str) -> None:
    if not rule.scopes and not rule.claims:
        raise ConfigError(f"{key}: the rule names no scope or claim; drop it or fill it in")
    # Checked here rather than on the field: msgspec would name a bad dict value `claims[...]`, not its claim.
    for claim, want in rule.claims.items():
        if not claim or want in ("", []):
            raise ConfigError(f"{key}.claims.{claim}: names no value")
