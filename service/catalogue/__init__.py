"""Google's Live models and what each accepts, read from one data file (`live_models.toml`).

Everything that needs a model fact reads it here: configuration checks, the emulator's setup checks,
`livetoken models` and `GET /v1/profiles`. Nothing else hard-codes a model name or what a model can do.
Each entry names the Google pages its facts come from; when Google's pages change, the file changes.
"""

from __future__ import annotations

import functools
import tomllib
from datetime import UTC, date, datetime
from importlib import resources
from typing import Annotated, Literal

import msgspec

Modality = Literal["AUDIO", "TEXT"]
ThinkingLevel = Literal["minimal", "low", "medium", "high"]
ToolBehavior = Literal["blocking", "non_blocking"]
Lifecycle = Literal["ga", "preview", "legacy"]
RETIRING_WINDOW_DAYS = 60  # a shutdown this close is a start-up warning, a gauge and an alert


class LiveModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One Live model as Google documents it."""

    name: str
    """The model code, without `models/`."""
    lifecycle: Lifecycle
    """Google's release stage: `ga` (stable), `preview`, or `legacy` (a preview superseded by a newer model)."""
    released: date
    """The release date on Google's deprecations page."""
    shutdown: date | None = None
    """The announced shutdown date; none when Google has announced none."""
    replacement: str | None = None
    """Google's recommended replacement, when it names one."""
    response_modalities: Annotated[list[Modality], msgspec.Meta(min_length=1)]
    """What the model answers in; a setup asking for another modality is refused."""
    modality_refusal: str
    """Google's close reason (code 1007) for a setup asking for a modality the model lacks."""
    thinking_levels: list[ThinkingLevel] = msgspec.field(default_factory=list)
    """The `thinking_level` values the model takes; empty: no thinking config at all."""
    thinking_required: bool = False
    """A setup must name a `thinking_level`."""
    thinking_budget: bool = False
    """The model takes a `thinking_budget` (tokens) instead of levels."""
    tool_behaviors: list[ToolBehavior] = msgspec.field(default_factory=lambda: ["blocking"])
    """Function-call behaviours the model offers (`behavior` on a declaration)."""
    default_tool_behavior: ToolBehavior = "blocking"
    """What a declaration without `behavior` gets."""
    response_scheduling: bool = False
    """Whether a FunctionResponse's `scheduling` (SILENT, WHEN_IDLE, INTERRUPT) says when its result is spoken."""
    proactive_audio: Literal["always", "optional", "unsupported"]
    """`always`: always on (`proactive_audio: false` is an error); `optional`: off unless asked for."""
    affective_dialog: Literal["supported", "removed", "unsupported"]
    """Whether `enable_affective_dialog` is accepted."""
    turn_coverage_default: str
    """The default `turn_coverage` (what of the input counts towards a turn)."""
    audio_session_minutes: float = 15
    """How long an audio-only session lasts without context window compression."""
    video_session_minutes: float = 2
    """How long a session with video lasts without context window compression."""
    sources: Annotated[list[str], msgspec.Meta(min_length=1)]
    """The Google pages these facts come from."""
    notes: str = ""
    """One line for `livetoken models`."""

    def status_on(self, day: date) -> str:
        """`GA`, `preview`, `legacy` or `shut down`, as of `day`."""
        if self.shutdown is not None and day >= self.shutdown:
            return "shut down"
        return {"ga": "GA", "preview": "preview", "legacy": "legacy"}[self.lifecycle]

    def shut_down_on(self, day: date) -> bool:
        """True once the announced shutdown date has come."""
        return self.shutdown is not None and day >= self.shutdown

    def retiring_on(self, day: date) -> bool:
        """True when the shutdown is announced and no more than RETIRING_WINDOW_DAYS ahead."""
        return self.shutdown is not None and 0 < (self.shutdown - day).days <= RETIRING_WINDOW_DAYS

    @property
    def thinking(self) -> str:
        """The thinking column: `none`, or the levels."""
        return "/".join(self.thinking_levels) if self.thinking_levels else "none"


class _CatalogueFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    checked: date
    """When the file was last checked against Google's pages."""
    default_model: str
    models: list[LiveModel]


class Catalogue(msgspec.Struct, frozen=True):
    """The Live models by name, and the default one."""

    checked: date
    default_model: str
    models: dict[str, LiveModel]

    def get(self, model: str) -> LiveModel | None:
        """The entry for `model` (with or without `models/`), or None if the catalogue does not know it."""
        return self.models.get(model.removeprefix("models/"))


@functools.cache
def catalogue() -> Catalogue:
    """The catalogue shipped in the package, read once."""
    raw = resources.files(__package__).joinpath("live_models.toml").read_bytes()
    data = msgspec.convert(tomllib.loads(raw.decode()), _CatalogueFile, strict=False)
    models = {entry.name: entry for entry in data.models}
    if data.default_model not in models:
        raise ValueError(f"live_models.toml: default_model {data.default_model!r} is not listed")
    return Catalogue(checked=data.checked, default_model=data.default_model, models=models)


def today() -> date:
    """Today in UTC, the day every status and shutdown check is made on."""
    return datetime.now(UTC).date()


__all__ = [
    "RETIRING_WINDOW_DAYS",
    "Catalogue",
    "LiveModel",
    "Modality",
    "ThinkingLevel",
    "ToolBehavior",
    "catalogue",
    "today",
]
