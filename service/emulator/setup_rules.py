"""What Google refuses at setup, per model, from the model catalogue: the close code and reason it sends.

The emulator is the only stand-in for Google in this project, so it must never accept a setup Google refuses:
an unknown or shut-down model (1008), a response modality the model lacks (1007, with the model's own reason),
a thinking config the model does not take, `proactive_audio: false` where it is always on, affective dialog
where it is gone, a tool behaviour the model does not offer. Setup keys arrive camelCase from the JS SDK and
with snake_case inner keys from the Python SDK's token setup, so both spellings are read.
"""

from __future__ import annotations

from typing import Any

from service.catalogue import LiveModel, catalogue, today
from service.emulator.model import declared_function_decls, pick

INVALID = 1007  # INVALID_ARGUMENT
POLICY = 1008  # NOT_FOUND and policy refusals
MAX_REASON_BYTES = 123  # a WebSocket close reason's limit; Google cuts longer messages there


def close_reason(message: str) -> str:
    """`message` cut to what a close frame carries (123 bytes of UTF-8), as Google's front end does."""
    data = message.encode()[:MAX_REASON_BYTES]
    return data.decode("utf-8", errors="ignore")


def model_of(setup: dict[str, Any]) -> LiveModel | None:
    """The catalogue entry of the setup's model, or None."""
    name = setup.get("model")
    return catalogue().get(name) if isinstance(name, str) else None


def refusal(setup: dict[str, Any], api_version: str) -> tuple[int, str] | None:
    """(close code, reason) for a setup Google would refuse, else None."""
    name = setup.get("model")
    if not isinstance(name, str) or not name:
        return INVALID, "Request contains an invalid argument."
    entry = catalogue().get(name)
    if entry is None or entry.shut_down_on(today()):
        full = name if name.startswith("models/") else f"models/{name}"
        return POLICY, close_reason(
            f"{full} is not found for API version {api_version}, or is not supported for bidiGenerateContent. "
            "Call ListModels to see the list of available models and their supported methods."
        )
    found = _generation_refusal(setup, entry) or _feature_refusal(setup, entry)
    return (INVALID, close_reason(found)) if found else None


def _generation_refusal(setup: dict[str, Any], entry: LiveModel) -> str | None:
    gen = pick(setup, "generationConfig") or {}
    modalities = pick(gen, "responseModalities") or ["AUDIO"]
    if any(m not in entry.response_modalities for m in modalities):
        return entry.modality_refusal
    return _thinking_refusal(gen, entry) or _affective_refusal(gen, entry)


def _thinking_refusal(gen: dict[str, Any], entry: LiveModel) -> str | None:
    thinking = pick(gen, "thinkingConfig")
    level = pick(thinking, "thinkingLevel") if isinstance(thinking, dict) else None
    budget = pick(thinking, "thinkingBudget") if isinstance(thinking, dict) else None
    if thinking is not None and not entry.thinking_levels and not entry.thinking_budget:
        return "Thinking config is not supported for this model."
    if level is not None and not entry.thinking_levels:
        return "Thinking level is not supported for this model."
    if budget is not None and not entry.thinking_budget:
        return "Thinking budget is not supported for this model."
    if isinstance(level, str) and level.lower() not in entry.thinking_levels:
        return f"Thinking level {level.upper()} is not supported for this model."
    if level is None and entry.thinking_required:
        return f"Thinking level is required for this model: one of {', '.join(entry.thinking_levels).upper()}."
    return None


def _affective_refusal(gen: dict[str, Any], entry: LiveModel) -> str | None:
    if pick(gen, "enableAffectiveDialog") is not None and entry.affective_dialog != "supported":
        if entry.affective_dialog == "removed":
            return (
                'Invalid JSON payload received. Unknown name "enableAffectiveDialog" at '
                "'setup.generation_config': Cannot find field."
            )
        return "Affective dialog is not supported for this model."
    return None


def _feature_refusal(setup: dict[str, Any], entry: LiveModel) -> str | None:
    proactivity = pick(setup, "proactivity")
    if isinstance(proactivity, dict) and pick(proactivity, "proactiveAudio") is not None:
        if entry.proactive_audio == "unsupported":
            return "Proactive audio is not supported for this model."
        if entry.proactive_audio == "always" and pick(proactivity, "proactiveAudio") is False:
            return "Proactive audio is always enabled for this model; proactive_audio cannot be false."
    for decl in declared_function_decls(setup):
        behavior = decl.get("behavior")
        if isinstance(behavior, str) and behavior != "UNSPECIFIED" and behavior.lower() not in entry.tool_behaviors:
            return f"Function behavior {behavior} is not supported for this model."
    return None


def schedules_results(setup: dict[str, Any]) -> bool:
    """Whether the model honours a FunctionResponse's `scheduling` (else a result is spoken when it is idle)."""
    entry = model_of(setup)
    return entry is None or entry.response_scheduling


def behavior_of(setup: dict[str, Any], function: str) -> str:
    """`blocking` or `non_blocking`: the declared behaviour of `function`, else the model's default."""
    for decl in declared_function_decls(setup):
        if decl.get("name") == function and isinstance(decl.get("behavior"), str):
            declared = str(decl["behavior"]).lower()
            if declared in ("blocking", "non_blocking"):
                return declared
    entry = model_of(setup)
    return entry.default_tool_behavior if entry is not None else "blocking"
