"""Profiles checked against the model catalogue: what Google would refuse is a configuration error.

Each refusal is one line naming the profile key and the model, raised at `check-config`, start-up and reload,
so a token that would fail on connect is never handed out. A model the catalogue does not know is a warning
(models arrive faster than releases) unless `strict_models = true`; a model within the retiring window of its
announced shutdown is a warning too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from service.catalogue import RETIRING_WINDOW_DAYS, LiveModel, catalogue, today
from service.config.errors import ConfigError
from service.config.model import FileConfig, ProfileConfig


def check_models(cfg: FileConfig, day: date | None = None) -> None:
    """Raise ConfigError for the first profile Google would refuse (or, with strict_models, not know)."""
    on = day or today()
    for name, profile in cfg.profiles.items():
        key = f"profiles.{name}"
        entry = catalogue().get(profile.model)
        if entry is None:
            if cfg.strict_models:
                raise ConfigError(
                    f"{key}.model: {_bare(profile.model)} is not in livetoken's model catalogue (livetoken models "
                    "lists it); strict_models = true refuses unknown models"
                )
            continue
        _check_profile(profile, key, entry, on)


def model_warnings(cfg: FileConfig, day: date | None = None) -> list[str]:
    """One line per profile whose model is unknown to the catalogue or shuts down soon."""
    on = day or today()
    found = []
    for name, profile in cfg.profiles.items():
        entry = catalogue().get(profile.model)
        key = f"profiles.{name}.model"
        if entry is None:
            found.append(
                f"{key}: {_bare(profile.model)} is not in livetoken's model catalogue (livetoken models); "
                "what it accepts is not checked"
            )
        elif entry.retiring_on(on) and entry.shutdown is not None:
            days = (entry.shutdown - on).days
            instead = f"; move to {entry.replacement}" if entry.replacement else ""
            found.append(
                f"{key}: {entry.name} shuts down on {entry.shutdown.isoformat()} (in {days} "
                f"day{'' if days == 1 else 's'}, within {RETIRING_WINDOW_DAYS}){instead}"
            )
    return found


def _bare(model: str) -> str:
    return model.removeprefix("models/")


def _check_profile(profile: ProfileConfig, key: str, model: LiveModel, on: date) -> None:
    if model.shut_down_on(on) and model.shutdown is not None:
        instead = f"; use {model.replacement}" if model.replacement else ""
        raise ConfigError(f"{key}.model: {model.name} was shut down by Google on {model.shutdown.isoformat()}{instead}")
    if profile.modality not in model.response_modalities:
        raise ConfigError(
            f"{key}.response_modalities: {model.name} answers in {' or '.join(model.response_modalities)} only; "
            'for text, set response_modalities = ["AUDIO"], output_audio_transcription = true and '
            'presentation = "transcript"'
        )
    _check_thinking(profile, key, model)
    if profile.proactive_audio is not None:
        if model.proactive_audio == "unsupported":
            raise ConfigError(f"{key}.proactive_audio: {model.name} has no proactive audio; remove the key")
        if model.proactive_audio == "always" and not profile.proactive_audio:
            raise ConfigError(
                f"{key}.proactive_audio: {model.name} always has proactive audio on and Google refuses false; "
                "remove the key"
            )
    if profile.affective_dialog is not None and model.affective_dialog != "supported":
        what = "was removed from" if model.affective_dialog == "removed" else "is not offered by"
        raise ConfigError(f"{key}.affective_dialog: affective dialog {what} {model.name}; remove the key")
    for i, tool in enumerate(profile.tools):
        if tool.behavior is not None and tool.behavior not in model.tool_behaviors:
            raise ConfigError(
                f"{key}.tools[{i}].behavior: {model.name} runs tools {' or '.join(model.tool_behaviors)} only, "
                f'not "{tool.behavior}"'
            )


def _check_thinking(profile: ProfileConfig, key: str, model: LiveModel) -> None:
    levels = model.thinking_levels
    if profile.thinking_level is None:
        if model.thinking_required:
            raise ConfigError(f"{key}.thinking_level: {model.name} needs a thinking_level ({_either(levels)})")
        return
    if not levels:
        raise ConfigError(f"{key}.thinking_level: {model.name} takes no thinking_level (Google refuses it); remove it")
    if profile.thinking_level not in levels:
        raise ConfigError(f'{key}.thinking_level: {model.name} takes {_either(levels)}, not "{profile.thinking_level}"')


def _either(values: Sequence[str]) -> str:
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"
