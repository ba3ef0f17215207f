"""Build the locked Live session setup for a profile, once, at start-up.

A profile's constraints never change, so they are built per (profile, voice) when the app starts and reused
for every mint; only the expiry times vary per request.
"""

from __future__ import annotations

from typing import Any

from google.genai import types

from service.catalogue import catalogue
from service.config import ActivityDetection, FunctionDeclaration, ProfileConfig

_TURN_COVERAGE = {
    "only_activity": types.TurnCoverage.TURN_INCLUDES_ONLY_ACTIVITY,
    "all_input": types.TurnCoverage.TURN_INCLUDES_ALL_INPUT,
    "audio_activity_and_all_video": types.TurnCoverage.TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO,
}


def _function_declaration(tool: FunctionDeclaration, default_behavior: str | None) -> types.FunctionDeclaration:
    behavior = tool.behavior or default_behavior
    return types.FunctionDeclaration(
        name=tool.name,
        description=tool.description or None,
        parameters=types.Schema.model_validate(tool.parameters) if tool.parameters else None,
        behavior=types.Behavior(behavior.upper()) if behavior else None,
    )


def _default_behavior(profile: ProfileConfig) -> str | None:
    """The model's own tool behaviour, written out where the model offers a choice, so a client reading the
    config knows whether a call blocks the conversation; None for a model with one mode or one the catalogue
    does not know."""
    model = catalogue().get(profile.model)
    if model is None or "non_blocking" not in model.tool_behaviors:
        return None
    return model.default_tool_behavior


def _realtime_input(profile: ProfileConfig) -> types.RealtimeInputConfig | None:
    detection: ActivityDetection | None = profile.activity_detection
    if detection is None and profile.turn_coverage is None:
        return None
    automatic = None
    if detection is not None:
        automatic = types.AutomaticActivityDetection(
            disabled=True if detection.mode == "manual" else None,
            start_of_speech_sensitivity=(
                types.StartSensitivity(f"START_SENSITIVITY_{detection.start_sensitivity.upper()}")
                if detection.start_sensitivity
                else None
            ),
            end_of_speech_sensitivity=(
                types.EndSensitivity(f"END_SENSITIVITY_{detection.end_sensitivity.upper()}")
                if detection.end_sensitivity
                else None
            ),
            prefix_padding_ms=round(detection.prefix_padding * 1000) if detection.prefix_padding is not None else None,
            silence_duration_ms=(
                round(detection.silence_duration * 1000) if detection.silence_duration is not None else None
            ),
        )
    return types.RealtimeInputConfig(
        automatic_activity_detection=automatic,
        turn_coverage=_TURN_COVERAGE[profile.turn_coverage] if profile.turn_coverage else None,
    )


def live_config(profile: ProfileConfig, voice: str | None) -> types.LiveConnectConfig:
    """The LiveConnectConfig a token for this profile (and voice) locks the session to."""
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality(profile.modality)],
        temperature=profile.temperature,
        system_instruction=profile.system_instruction,
    )
    if voice is not None:
        config.speech_config = types.SpeechConfig(
            voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=voice))
        )
    if profile.tools:
        default = _default_behavior(profile)
        config.tools = [types.Tool(function_declarations=[_function_declaration(t, default) for t in profile.tools])]
    if profile.thinking_level is not None:
        config.thinking_config = types.ThinkingConfig(
            thinking_level=types.ThinkingLevel(profile.thinking_level.upper())
        )
    config.realtime_input_config = _realtime_input(profile)
    if profile.media_resolution is not None:
        config.media_resolution = types.MediaResolution(f"MEDIA_RESOLUTION_{profile.media_resolution.upper()}")
    if profile.proactive_audio is not None:
        config.proactivity = types.ProactivityConfig(proactive_audio=profile.proactive_audio)
    if profile.affective_dialog is not None:
        config.enable_affective_dialog = profile.affective_dialog
    if profile.input_audio_transcription:
        config.input_audio_transcription = types.AudioTranscriptionConfig()
    if profile.output_audio_transcription:
        config.output_audio_transcription = types.AudioTranscriptionConfig()
    if profile.session_resumption:
        config.session_resumption = types.SessionResumptionConfig()
    if profile.context_window_compression:
        config.context_window_compression = types.ContextWindowCompressionConfig(sliding_window=types.SlidingWindow())
    return config


def build_constraints(profile: ProfileConfig) -> dict[str | None, types.LiveConnectConstraints]:
    """Constraints keyed by voice: the default (key None) plus one per allowed override voice."""
    model = profile.model.removeprefix("models/")
    out: dict[str | None, types.LiveConnectConstraints] = {
        None: types.LiveConnectConstraints(model=model, config=live_config(profile, profile.voice))
    }
    for voice in profile.allowed_voices:
        out[voice] = types.LiveConnectConstraints(model=model, config=live_config(profile, voice))
    return out


def public_config(constraints: types.LiveConnectConstraints) -> dict[str, Any]:
    """The locked config in the Live API's camelCase JSON, for the client to pass to its SDK unchanged.

    Google's JS SDK reads camelCase only (snake_case fields are silently dropped); the Python SDK takes both.
    """
    config = constraints.config or types.LiveConnectConfig()
    return config.model_dump(mode="json", exclude_none=True, by_alias=True)
