"""Build the locked Live session setup for a profile, once, at start-up.

A profile's constraints never change, so they are built per (profile, voice) when the app starts and reused
for every mint; only the expiry times vary per request.
"""

from __future__ import annotations

from typing import Any

from google.genai import types

from service.config import ProfileConfig


def _function_declaration(name: str, description: str, parameters: dict[str, Any] | None) -> types.FunctionDeclaration:
    return types.FunctionDeclaration(
        name=name,
        description=description or None,
        parameters=types.Schema.model_validate(parameters) if parameters else None,
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
        config.tools = [
            types.Tool(
                function_declarations=[
                    _function_declaration(t.name, t.description, t.parameters) for t in profile.tools
                ]
            )
        ]
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
