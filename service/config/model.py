"""The TOML file's shape: one struct per table; every field says what it means, its default and its bounds.

A rule about one field lives on that field (`msgspec.Meta`, a `Literal`, or a `checks.FieldCheck` such as
`Within` for a duration), so it is checked as the file is read and the error names the key; rules that tie
fields together are in `rules.py`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, get_args

import msgspec

from service.catalogue import ThinkingLevel, ToolBehavior
from service.config.checks import HttpUrl, Within
from service.config.duration import Duration
from service.config.endpoints import ORIGIN_MEANING, ORIGIN_PATTERN
from service.config.voices import KNOWN_VOICES

MAX_TOKEN_TTL = 20 * 3600.0  # Google refuses expire times 20 h or more in the future.
HsAlgorithm = Literal["HS256", "HS384", "HS512"]
AsymmetricAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
HS_ALGORITHMS: frozenset[str] = frozenset(get_args(HsAlgorithm))
ASYMMETRIC_ALGORITHMS: frozenset[str] = frozenset(get_args(AsymmetricAlgorithm))
MIN_HS_SECRET_BYTES = 32
HS_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}  # at least the hash's output length (RFC 7518 §3.2)
# Written once, used by the config and the API's request type (and so the OpenAPI document).
PROFILE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
VOICE_NAME_PATTERN = r"^[A-Za-z]+$"
_TOOL_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z"
_MODEL_PATTERN = r"^(models/)?[^/\s]+\Z"
_VOICE_PATTERN = rf"^({'|'.join(sorted(KNOWN_VOICES))})\Z"
# What each pattern asks for, in words ("must be …"): msgspec's own message only quotes the regex.
PATTERN_MEANINGS = {
    PROFILE_NAME_PATTERN: "lowercase letters, digits, '-' and '_', starting with a letter or digit",
    _TOOL_NAME_PATTERN: "letters, digits, '_', '.' and '-' (at most 64), starting with a letter or '_'",
    _MODEL_PATTERN: "a model name such as gemini-3.8-live",
    _VOICE_PATTERN: f"a Live API voice: {', '.join(sorted(KNOWN_VOICES))}",
    ORIGIN_PATTERN: ORIGIN_MEANING,
}

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
ProfileName = Annotated[str, msgspec.Meta(min_length=1, max_length=63, pattern=PROFILE_NAME_PATTERN)]
VoiceName = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=VOICE_NAME_PATTERN)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Voice = Annotated[str, msgspec.Meta(pattern=_VOICE_PATTERN)]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base for every config table: an unknown key is an error, not silently ignored."""


class LimitRule(_Strict, frozen=True):
    """One GCRA rule: `rate` requests per `period`, with bursts of up to `burst` at once."""

    rate: Positive
    """Requests allowed per period; at least 1. Required."""
    period: Annotated[Duration, Within(gt=0)] = Duration(60)
    """The window the rate is counted over; default 60s."""
    burst: Positive | None = None
    """Requests allowed at once; default the rate."""

    @property
    def effective_burst(self) -> int:
        """Burst size; defaults to the rate."""
        return self.burst if self.burst is not None else self.rate


class LimitsConfig(_Strict, frozen=True):
    """`[limits]`: layered rate limits and what to do when Redis is unavailable."""

    subject: Annotated[list[LimitRule], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: [LimitRule(rate=10, period=Duration(60), burst=5)]
    )
    """Per-caller rules (every one must pass); at least one; default 10 per minute, bursts of 5."""
    tenant: list[LimitRule] = msgspec.field(default_factory=list)
    """Per-tenant rules (callers sharing a tenant claim); default none."""
    global_: list[LimitRule] = msgspec.field(default_factory=list, name="global")
    """Rules over all callers together (`[[limits.global]]`); default none."""
    fail_mode: Literal["closed", "open"] = "closed"
    """Redis unavailable: `closed` answers 503, `open` falls back to a per-replica memory limiter."""
    redis_timeout: Annotated[Duration, Within(gt=0, le=5)] = Duration(0.25)
    """Bound on every Redis call on the request path; more than 0, at most 5s; default 250ms."""
    redis_cluster: bool = False
    """`LIVETOKEN_REDIS_URL` names a node of a Redis Cluster; default false."""
    key_prefix: str = "livetoken"
    """Prefix of every Redis key; default `livetoken`."""
    anonymous: Annotated[list[LimitRule], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: [LimitRule(rate=30, period=Duration(60), burst=10)]
    )
    """Rules for anonymous callers of an `anonymous` profile (no user JWT, only Firebase App Check), in place of
    `subject`, counted per app (the App Check token's `sub`): every anonymous caller of one app shares them;
    default 30 per minute, bursts of 10."""


class IssuerConfig(_Strict, frozen=True):
    """`[[issuers]]`: one trusted JWT issuer; exactly one key source of `discovery`, `jwks_url`,
    `public_key_file`, `hs256_secret_env`."""

    issuer: NonEmpty
    """The `iss` claim, exactly as the issuer writes it. Required."""
    audiences: Annotated[list[NonEmpty], msgspec.Meta(min_length=1)]
    """Accepted `aud` values (a token must carry one). Required, at least one."""
    algorithms: Annotated[list[Literal[HsAlgorithm, AsymmetricAlgorithm]], msgspec.Meta(min_length=1)]
    """Signature algorithms accepted; HS ones only with `hs256_secret_env`, never mixed. Required."""
    discovery: bool = False
    """Key source: OpenID Connect discovery. `<issuer>/.well-known/openid-configuration` is fetched with the
    JWKS (same cooldown, timeout and stale serving); its `issuer` must equal this one exactly and its `jwks_uri`
    be https (http only on a loopback address). The issuer must then be an https URL (http only on loopback)."""
    jwks_url: Annotated[str, HttpUrl()] | None = None
    """Key source: the issuer's JWKS endpoint, an http(s) URL."""
    public_key_file: str | None = None
    """Key source: a PEM file holding the issuer's RSA, EC or Ed25519 public key."""
    hs256_secret_env: NonEmpty | None = None
    """Key source: the environment variable (or its `_FILE` twin) holding the shared secret: at least 32 bytes,
    48 if HS384 is allowed, 64 if HS512 is."""
    leeway: Annotated[Duration, Within(le=300)] = Duration(30)
    """Clock skew allowed on `exp`, `nbf` and `iat`; at most 300s; default 30s."""
    max_token_age: Duration | None = None
    """Refuse tokens whose `iat` is older than this (and tokens without `iat`); default no limit."""
    audience_claim: NonEmpty = "aud"
    """The claim checked against `audiences` (a string or a list of strings): `client_id` for Amazon Cognito
    access tokens, which carry no `aud`; default `aud`."""
    authorized_parties: list[NonEmpty] = msgspec.field(default_factory=list)
    """When set, a token must carry an `azp` claim (the client it was issued to: Clerk's origin, an OIDC ID
    token's client) that is one of these; default no check."""
    require_claims: dict[str, str | list[str]] = msgspec.field(default_factory=dict)
    """Claims every token of this issuer must hold, name (or dotted path) → the value or one of the values,
    e.g. `{ token_use = "access" }` for Cognito; default none."""
    subject_claim: NonEmpty = "sub"
    """The claim naming the caller (a dotted path reaches into an object); default `sub`."""
    tenant_claim: str | None = None
    """The claim naming the caller's tenant (for tenant limits and budgets; a dotted path reaches into an
    object); default none."""
    scopes_claim: str = "scope"
    """The claim carrying scopes, a space-separated string or a list; a dotted path reaches into an object
    (Keycloak's `realm_access.roles`); default `scope`."""
    jwks_cache_ttl: Duration = Duration(600)
    """How long fetched JWKS keys are trusted before a refetch; default 10m."""
    jwks_refresh_cooldown: Duration = Duration(30)
    """An unknown `kid` refetches the JWKS at most once per this; default 30s."""
    jwks_timeout: Duration = Duration(2)
    """Bound on one JWKS fetch; default 2s."""
    jwks_max_stale: Duration = Duration(86400)
    """While the JWKS endpoint is down, cached keys keep serving up to this age; default 24h."""


class FunctionDeclaration(_Strict, frozen=True):
    """A tool the model may call; `parameters` is an OpenAPI-style schema as Google accepts it."""

    name: Annotated[str, msgspec.Meta(pattern=_TOOL_NAME_PATTERN)]
    """The function's name, unique within the profile. Required."""
    description: str = ""
    """What the function does, for the model; default empty."""
    parameters: dict[str, Any] | None = None
    """The arguments' schema (OpenAPI subset); default none."""
    behavior: ToolBehavior | None = None
    """`blocking` (the model waits for the result) or `non_blocking` (it goes on talking while the call runs);
    default the model's own (`livetoken models`), written into the token so clients know."""


class ActivityDetection(_Strict, frozen=True):
    """`[profiles.NAME.activity_detection]`: how the Live API finds where the caller's turns start and end."""

    mode: Literal["automatic", "manual"] = "automatic"
    """`automatic`: Google's voice activity detection; `manual`: the client sends activityStart/activityEnd."""
    start_sensitivity: Literal["low", "high"] | None = None
    """How readily speech counts as the start of a turn; default Google's."""
    end_sensitivity: Literal["low", "high"] | None = None
    """How readily silence counts as the end of a turn; default Google's."""
    prefix_padding: Annotated[Duration, Within(le=10)] | None = None
    """Speech needed before a start is committed, e.g. "20ms"; at most 10s; default Google's."""
    silence_duration: Annotated[Duration, Within(le=10)] | None = None
    """Silence needed before an end is committed, e.g. "500ms"; at most 10s; default Google's."""


class RequireRule(_Strict, frozen=True):
    """Claims a caller must hold to use a profile (all of them); it must name at least one."""

    scopes: list[NonEmpty] = msgspec.field(default_factory=list)
    """Scopes the caller must hold, each in `scopes_claim`; default none."""
    claims: dict[str, str | list[str]] = msgspec.field(default_factory=dict)
    """Claim name (or dotted path, `realm_access.roles`) → the value (or one of the values) it must have; a
    literal claim of that name wins over the path; default none."""


class ProfileConfig(_Strict, frozen=True):
    """`[profiles.NAME]`: one locked Live session shape that callers may request tokens for."""

    model: Annotated[str, msgspec.Meta(pattern=_MODEL_PATTERN)]
    """The Live model, with or without `models/`. Required."""
    description: str = ""
    """Shown to callers by `GET /v1/profiles`; default empty."""
    response_modalities: Annotated[list[Literal["AUDIO", "TEXT"]], msgspec.Meta(min_length=1, max_length=1)] = (
        msgspec.field(default_factory=lambda: ["AUDIO"])
    )
    """`["AUDIO"]` or `["TEXT"]`, not both, and only what the model answers in (today's Live models: AUDIO;
    text comes from `output_audio_transcription`); default audio."""
    voice: Voice | None = None
    """The default voice, a Live API voice name; none for TEXT profiles."""
    allowed_voices: list[Voice] = msgspec.field(default_factory=list)
    """Voices a caller may pick with `"voice"` (must include `voice`); default only the default voice."""
    system_instruction: str | None = None
    """Locked system instruction; default none."""
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    """Locked sampling temperature, 0 to 2; default the model's."""
    tools: list[FunctionDeclaration] = msgspec.field(default_factory=list)
    """Function declarations the model may call; default none."""
    thinking_level: ThinkingLevel | None = None
    """How much the model reasons before it speaks, for models that take it (`livetoken models`); default
    none (the model's own)."""
    activity_detection: ActivityDetection | None = None
    """Turn detection settings (automatic with sensitivities and timings, or manual); default Google's."""
    turn_coverage: Literal["only_activity", "all_input", "audio_activity_and_all_video"] | None = None
    """What of the input counts towards a turn; default the model's (`livetoken models`)."""
    media_resolution: Literal["low", "medium", "high"] | None = None
    """Resolution video frames are read at (tokens per frame); default Google's."""
    proactive_audio: bool | None = None
    """Let the model decide not to answer input that is not meant for it, on models where it is optional;
    default the model's."""
    affective_dialog: bool | None = None
    """Let the model adapt its tone to the caller's, on models that have it; default off."""
    presentation: Literal["voice", "transcript"] = "voice"
    """How clients show replies: `voice` plays the audio; `transcript` shows the output transcription and plays
    nothing (needs `output_audio_transcription`), for text chat on audio-only models. Default voice."""
    input_audio_transcription: bool = False
    """Transcribe what the caller says; default false."""
    output_audio_transcription: bool = False
    """Transcribe what the model says; default false."""
    session_resumption: bool = True
    """Let a dropped session resume (resuming is not a use); default true."""
    context_window_compression: bool = False
    """Slide the context window so long sessions go on; default false."""
    session_ttl: Annotated[Duration, Within(gt=0, lt=MAX_TOKEN_TTL)] | None = None
    """The token's `expire_time`, under 20h; default 15m for audio, 30m for text."""
    new_session_ttl: Annotated[Duration, Within(gt=0)] = Duration(60)
    """Window to open the first session, at most `session_ttl`; default 60s."""
    uses: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 1
    """Sessions the token may start, 0 (unlimited) to 1000; default 1."""
    require: RequireRule | None = None
    """Claims the caller must hold; default anyone the issuers trust."""
    limits: list[LimitRule] = msgspec.field(default_factory=list)
    """Extra per-subject rules for this profile; default none."""
    require_app_check: bool = False
    """Callers must also send a valid Firebase App Check token (`X-Firebase-AppCheck`), the proof that the
    request comes from your real app (`[app_check]`); default false."""
    anonymous: bool = False
    """Callers may come without a user JWT, on App Check alone (needs `require_app_check`; limited by
    `limits.anonymous` per app); default false."""
    cost: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] | None = None
    """Budget units one token of this profile spends (`[[budgets]]`); default its `session_ttl` in whole
    minutes (15 for a 15-minute audio token), so budgets count session minutes."""

    @property
    def modality(self) -> Literal["AUDIO", "TEXT"]:
        """The profile's single response modality."""
        return self.response_modalities[0]

    @property
    def effective_cost(self) -> int:
        """Budget units per token: `cost`, else the session's length in (started) minutes."""
        if self.cost is not None:
            return self.cost
        return math.ceil(self.effective_session_ttl / 60)

    @property
    def effective_session_ttl(self) -> float:
        """expire_time offset: the configured one, else 15 min for audio and 30 min (Google's) for text."""
        if self.session_ttl is not None:
            return float(self.session_ttl)
        return 900.0 if self.modality == "AUDIO" else 1800.0


class BudgetConfig(_Strict, frozen=True):
    """`[[budgets]]`: a quota of cost units per subject or per tenant and period, kept in Redis."""

    layer: Literal["subject", "tenant"]
    """Whose spending it counts: each caller's (`subject`) or each tenant's together. Required."""
    units: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
    """Units per period (a profile's token costs its `cost`). Required."""
    period: Annotated[Duration, Within(gt=0)]
    """The period, e.g. "1d" or "30d". Required. Rolling unless `reset_time_zone` is set."""
    profiles: list[ProfileName] = msgspec.field(default_factory=list)
    """Profiles whose tokens count against it; default all."""
    reset_time_zone: str | None = None
    """Calendar periods instead of rolling ones: whole days starting at midnight in this IANA time zone
    (e.g. "Europe/Paris"); `period` must then be whole days. Default rolling: the units refill continuously,
    `units` per `period`, and at most `units` can be spent at once."""


class AdminConfig(_Strict, frozen=True):
    """`[admin]`: who may block and unblock callers over HTTP (`/v1/admin/blocks`)."""

    require: RequireRule
    """Claims an operator's JWT must hold, e.g. `{ scopes = ["livetoken:admin"] }`. Required."""
    issuers: list[NonEmpty] = msgspec.field(default_factory=list)
    """Issuers whose operators' JWTs count (each one of `[[issuers]]`); default any configured issuer."""


class ServerConfig(_Strict, frozen=True):
    """`[server]`: the HTTP listener and request-level bounds."""

    host: str = "127.0.0.1"
    """Listen address (`serve --host` wins); default 127.0.0.1."""
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8080
    """Listen port (`serve --port` wins); default 8080."""
    max_body_bytes: Annotated[int, msgspec.Meta(ge=256, le=1 << 20)] = 8192
    """Largest request body accepted (413 beyond), 256 to 1048576; default 8192."""
    request_timeout: Duration = Duration(10)
    """Bound on reading one request; default 10s."""
    idempotency_ttl: Duration = Duration(600)
    """Replay window of `Idempotency-Key` (capped at the token's lifetime); default 10m."""
    shutdown_grace: Duration = Duration(10)
    """In-flight requests finish within this after SIGTERM; default 10s."""
    cors_allow_origins: list[Annotated[str, msgspec.Meta(pattern=ORIGIN_PATTERN)]] = msgspec.field(default_factory=list)
    """Browser origins allowed to call the API, or `*`; default none."""
    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 256
    """Token requests this process works on at once (more wait in the queue), 1 to 100000; default 256; also kept
    within the upstream sockets the open-files limit allows."""
    queue_timeout: Annotated[Duration, Within(le=30)] = Duration(2)
    """How long a token request may wait for a place when all are taken (FIFO) before `503 overloaded`; one the
    measured drain rate says would wait longer is refused at once. 0 to 30s; 0 = refuse at once; default 2s."""
    max_queue: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 1024
    """Token requests waiting at most (more get `503 overloaded` at once), 0 to 100000; default 1024."""
    max_connections: Annotated[int, msgspec.Meta(ge=16, le=1_000_000)] = 4096
    """Open connections at most (also kept under the file-descriptor limit); at the bound the oldest idle
    connection is shed for a new one; 16 to 1000000; default 4096."""
    header_timeout: Annotated[Duration, Within(gt=0)] = Duration(10)
    """A connection must deliver a request's headers within this (slowloris and silent ones are closed);
    default 10s."""
    keepalive_timeout: Annotated[Duration, Within(gt=0)] = Duration(5)
    """An idle keep-alive connection is closed after this; default 5s."""


class UpstreamConfig(_Strict, frozen=True):
    """`[upstream]`: how hard to try Google before giving up."""

    attempt_timeout: Annotated[Duration, Within(gt=0)] = Duration(5)
    """Bound on one mint call; default 5s."""
    deadline: Duration = Duration(8)
    """Bound on all attempts together, at least `attempt_timeout`; default 8s."""
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=5)] = 2
    """Retries on 429, 5xx, timeouts and resets, 0 to 5; default 2."""
    backoff_base: Duration = Duration(0.1)
    """First retry's backoff (jittered, doubling); default 100ms."""
    circuit_failure_threshold: int = 5
    """Consecutive failures that open the circuit breaker; default 5."""
    circuit_reset_after: Duration = Duration(10)
    """How long the open circuit waits before a trial call; default 10s."""
    warm_connections: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 256
    """Upstream connections opened (TLS done) before the process says it is ready, 0 to 1000; default 256, as
    many as `server.max_in_flight` lets mint at once, so a first burst pays no handshakes."""
    key_cooldown: Annotated[Duration, Within(gt=0)] = Duration(300)
    """How long an API key Google refused (invalid, expired, blocked, leaked) is tried only after the other
    keys of `LIVETOKEN_GEMINI_API_KEY_FILE`; default 5m."""


class AppCheckConfig(_Strict, frozen=True):
    """`[app_check]`: how Firebase App Check tokens are verified (RS256, App Check's JWKS, `iss`
    `https://firebaseappcheck.googleapis.com/<project_number>`, `aud` containing `projects/<project_number>`)."""

    project_number: NonEmpty
    """Your Firebase project's number (Project settings; not its id). Required."""
    app_ids: list[NonEmpty] = msgspec.field(default_factory=list)
    """The App Check `sub` values (Firebase app ids, `1:…:web:…`) accepted; default every app of the project."""
    jwks_url: Annotated[str, HttpUrl()] = "https://firebaseappcheck.googleapis.com/v1/jwks"
    """Where App Check's public keys are; default Google's."""
    leeway: Annotated[Duration, Within(le=300)] = Duration(30)
    """Clock skew allowed on `exp` and `iat`; default 30s."""
    jwks_cache_ttl: Duration = Duration(21600)
    """How long fetched keys are trusted before a refetch; default 6h (as Firebase's Admin SDKs)."""
    jwks_refresh_cooldown: Duration = Duration(30)
    """An unknown `kid` refetches the keys at most once per this; default 30s."""
    jwks_timeout: Duration = Duration(2)
    """Bound on one key fetch; default 2s."""
    jwks_max_stale: Duration = Duration(86400)
    """While the key endpoint is down, cached keys keep serving up to this age; default 24h."""


class FileConfig(_Strict, frozen=True):
    """The whole TOML document."""

    issuers: Annotated[list[IssuerConfig], msgspec.Meta(min_length=1)]
    """`[[issuers]]`: trusted JWT issuers, each `issuer` once. Required, at least one."""
    profiles: Annotated[dict[ProfileName, ProfileConfig], msgspec.Meta(min_length=1)]
    """`[profiles.NAME]`: what callers may request, by name. Required, at least one."""
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    """`[limits]`: rate limits; default 10 per minute per subject."""
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    """`[server]`: the listener."""
    upstream: UpstreamConfig = msgspec.field(default_factory=UpstreamConfig)
    """`[upstream]`: retries and the circuit breaker towards Google."""
    budgets: list[BudgetConfig] = msgspec.field(default_factory=list)
    """`[[budgets]]`: spend quotas in cost units per subject or tenant and period; default none."""
    admin: AdminConfig | None = None
    """`[admin]`: who may block callers over HTTP; default nobody (the CLI still can)."""
    app_check: AppCheckConfig | None = None
    """`[app_check]`: Firebase App Check verification, for profiles with `require_app_check`; default none."""
    strict_models: bool = False
    """A profile whose model the catalogue (`livetoken models`) does not know is an error instead of a
    warning; default false (models arrive faster than releases)."""
