"""The model catalogue: every profile Google would refuse is a one-line configuration error naming the profile key
and the model, from check-config and serve alike; unknown and retiring models are warnings; `livetoken models`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from datetime import date
from pathlib import Path

import msgspec
import pytest

from service import devmode
from service.catalogue import catalogue
from service.cli import main
from service.config import model_warnings, parse_file_config

ROOT = Path(__file__).resolve().parent.parent
ISSUER = """
[[issuers]]
issuer = "https://idp.test/"
audiences = ["livetoken"]
algorithms = ["HS256"]
hs256_secret_env = "TEST_SECRET"
"""


def _profile(body: str, name: str = "p", top: str = "") -> str:
    return f"{top}{ISSUER}\n[profiles.{name}]\n{body}\n"


REFUSED = [
    pytest.param(
        _profile('model = "gemini-3.8-live"\nresponse_modalities = ["TEXT"]', "text"),
        "profiles.text.response_modalities: gemini-3.8-live answers in AUDIO only; for text, set "
        'response_modalities = ["AUDIO"], output_audio_transcription = true and presentation = "transcript"',
        id="text-on-audio-only",
    ),
    pytest.param(
        _profile('model = "models/gemini-2.5-flash-native-audio-preview-12-2025"\nresponse_modalities = ["TEXT"]'),
        "profiles.p.response_modalities: gemini-2.5-flash-native-audio-preview-12-2025 answers in AUDIO only; for "
        'text, set response_modalities = ["AUDIO"], output_audio_transcription = true and presentation = "transcript"',
        id="text-on-native-audio",
    ),
    pytest.param(
        _profile('model = "gemini-3.8-live"\nthinking_level = "low"'),
        "profiles.p.thinking_level: gemini-3.8-live takes no thinking_level (Google refuses it); remove it",
        id="thinking-on-3.8",
    ),
    pytest.param(
        _profile('model = "gemini-3.8-live-extended-thinking"\nthinking_level = "minimal"'),
        'profiles.p.thinking_level: gemini-3.8-live-extended-thinking takes low, medium or high, not "minimal"',
        id="minimal-thinking",
    ),
    pytest.param(
        _profile('model = "gemini-3.8-live-extended-thinking"'),
        "profiles.p.thinking_level: gemini-3.8-live-extended-thinking needs a thinking_level (low, medium or high)",
        id="thinking-missing",
    ),
    pytest.param(
        _profile('model = "gemini-3.8-live"\nproactive_audio = false'),
        "profiles.p.proactive_audio: gemini-3.8-live always has proactive audio on and Google refuses false; "
        "remove the key",
        id="proactive-off",
    ),
    pytest.param(
        _profile('model = "gemini-3.1-flash-live-preview"\nproactive_audio = true'),
        "profiles.p.proactive_audio: gemini-3.1-flash-live-preview has no proactive audio; remove the key",
        id="proactive-unsupported",
    ),
    pytest.param(
        _profile('model = "gemini-3.8-live"\naffective_dialog = true'),
        "profiles.p.affective_dialog: affective dialog was removed from gemini-3.8-live; remove the key",
        id="affective-removed",
    ),
    pytest.param(
        _profile(
            'model = "gemini-3.8-live-extended-thinking"\nthinking_level = "low"\n'
            '[[profiles.p.tools]]\nname = "f"\n[[profiles.p.tools]]\nname = "g"\nbehavior = "blocking"'
        ),
        'profiles.p.tools[1].behavior: gemini-3.8-live-extended-thinking runs tools non_blocking only, not "blocking"',
        id="blocking-unsupported",
    ),
    pytest.param(
        _profile('model = "gemini-2.0-flash-live-001"'),
        "profiles.p.model: gemini-2.0-flash-live-001 was shut down by Google on 2025-12-09; use gemini-3.8-live",
        id="shut-down",
    ),
    pytest.param(
        _profile('model = "gemini-9-live"', top="strict_models = true\n"),
        "profiles.p.model: gemini-9-live is not in livetoken's model catalogue (livetoken models lists it); "
        "strict_models = true refuses unknown models",
        id="unknown-strict",
    ),
    pytest.param(
        _profile('model = "gemini-3.8-live"\npresentation = "transcript"'),
        'profiles.p.presentation: "transcript" shows the output transcription; set output_audio_transcription = true',
        id="transcript-without-transcription",
    ),
    pytest.param(
        _profile('model = "gemini-3.8-live"\nactivity_detection = { mode = "manual", silence_duration = "1s" }'),
        'profiles.p.activity_detection.silence_duration: applies to automatic detection only, not mode = "manual"',
        id="manual-with-timing",
    ),
]


@pytest.mark.parametrize(("text", "line"), REFUSED)
def test_check_config_and_serve_refuse_what_google_refuses_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], text: str, line: str
) -> None:
    """The same one line, exit 2, from `check-config` and from `serve` (which starts nothing)."""
    monkeypatch.setenv("TEST_SECRET", "s" * 40)
    monkeypatch.setenv("LIVETOKEN_GEMINI_API_KEY", "k")
    path = tmp_path / "livetoken.toml"
    path.write_text(text)
    assert main(["check-config", str(path)]) == 2
    assert main(["serve", "--config", str(path)]) == 2
    assert capsys.readouterr().err == f"livetoken: configuration error: {line}\n" * 2


def test_an_unknown_model_is_a_warning_and_the_config_is_ok(tmp_path: Path) -> None:
    """Models arrive faster than releases: without strict_models an unknown one passes, with one warning line."""
    path = tmp_path / "livetoken.toml"
    path.write_text(_profile('model = "models/gemini-9-live"'))
    res = subprocess.run(
        [sys.executable, "-m", "service.cli", "check-config", "--no-env", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == (
        "livetoken: warning: profiles.p.model: gemini-9-live is not in livetoken's model catalogue (livetoken "
        "models); what it accepts is not checked\n"
    )
    assert res.stdout == f"{path}: OK (1 issuer(s), profiles: p)\n"


def test_a_model_within_60_days_of_its_shutdown_is_a_warning() -> None:
    """38 days before gemini-2.0-flash-live-001's shutdown the profile warns and names the replacement; 61 days
    before it does not; on the day it is refused."""
    cfg = parse_file_config(tomllib.loads(_profile('model = "gemini-3.8-live"')))
    retiring = msgspec.structs.replace(cfg.profiles["p"], model="gemini-2.0-flash-live-001")
    cfg = msgspec.structs.replace(cfg, profiles={"p": retiring})
    assert model_warnings(cfg, date(2025, 11, 1)) == [
        "profiles.p.model: gemini-2.0-flash-live-001 shuts down on 2025-12-09 (in 38 days, within 60); "
        "move to gemini-3.8-live"
    ]
    assert model_warnings(cfg, date(2025, 10, 9)) == []
    entry = catalogue().models["gemini-2.0-flash-live-001"]
    assert (entry.retiring_on(date(2025, 12, 8)), entry.retiring_on(date(2025, 12, 9))) == (True, False)
    assert entry.status_on(date(2025, 12, 9)) == "shut down"


@pytest.mark.parametrize(
    "path",
    [ROOT / "deploy" / "livetoken.toml", ROOT / "deploy" / "compose" / "livetoken.toml"],
    ids=["deploy", "compose"],
)
def test_shipped_configs_are_clean(path: Path) -> None:
    """check-config on the shipped configs: OK with no warning."""
    res = subprocess.run(
        [sys.executable, "-m", "service.cli", "check-config", "--no-env", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (res.returncode, res.stderr) == (0, "")


def test_every_shipped_profile_is_on_a_current_model() -> None:
    """Dev mode, deploy and compose ship voice, video, text, thinking and a tools profile, all on a GA model of the
    catalogue; text is audio shown as its transcript; thinking is on the extended-thinking model."""
    day = date.today()
    for text in (
        devmode.DEV_CONFIG.replace("{{", "{").replace("}}", "}"),
        (ROOT / "deploy" / "livetoken.toml").read_text(),
        (ROOT / "deploy" / "compose" / "livetoken.toml").read_text(),
    ):
        profiles = tomllib.loads(text)["profiles"]
        assert {"voice", "video", "text", "thinking"} <= set(profiles)
        assert any(p.get("tools") for p in profiles.values())
        for name, profile in profiles.items():
            entry = catalogue().get(profile["model"])
            assert entry is not None, name
            assert entry.status_on(day) == "GA", name
        assert profiles["text"]["response_modalities"] == ["AUDIO"]
        assert profiles["text"]["presentation"] == "transcript"
        assert profiles["thinking"]["model"] == "gemini-3.8-live-extended-thinking"


def test_livetoken_models_prints_the_catalogue() -> None:
    """`livetoken models`: one row per model with status, modalities and thinking, the default named."""
    res = subprocess.run([sys.executable, "-m", "service.cli", "models"], capture_output=True, text=True, check=True)
    rows = {line.split()[0]: line.split()[1:4] for line in res.stdout.splitlines()[1:] if line.startswith("gemini")}
    assert rows["gemini-3.8-live"] == ["GA", "AUDIO", "none"]
    assert rows["gemini-3.8-live-extended-thinking"] == ["GA", "AUDIO", "low/medium/high"]
    assert rows["gemini-3.1-flash-live-preview"] == ["legacy", "AUDIO", "minimal/low/medium/high"]
    assert rows["gemini-2.0-flash-live-001"][:3] == ["shut", "down", "(since"]
    assert res.stdout.splitlines()[0].split() == ["MODEL", "STATUS", "MODALITIES", "THINKING", "NOTES"]
    assert "Default: gemini-3.8-live." in res.stdout


def test_the_readme_shows_what_livetoken_models_prints() -> None:
    """The configuration page's `livetoken models` block is the command's output today."""
    res = subprocess.run([sys.executable, "-m", "service.cli", "models"], capture_output=True, text=True, check=True)
    readme = (ROOT / "docs" / "operations" / "configuration.md").read_text()
    block = readme.split("$ .venv/bin/livetoken models\n", 1)[1].split("```", 1)[0]
    assert block == res.stdout
