"""Configuration: the example config is valid; every bad config is refused with the bad key named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import main
from service.config import ConfigError, load_env, load_file_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "deploy" / "livetoken.toml"
GOOD_SECRET = "s" * 40

BASE = """
[[issuers]]
issuer = "https://idp.test/"
audiences = ["livetoken"]
algorithms = ["HS256"]
hs256_secret_env = "TEST_SECRET"

[profiles.voice]
model = "gemini-2.5-flash-native-audio-preview-12-2025"
voice = "Puck"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "livetoken.toml"
    path.write_text(text)
    return path


def test_example_config_is_valid() -> None:
    """The shipped deploy/livetoken.toml (used by docs, compose and tests) passes validation."""
    cfg = load_file_config(EXAMPLE)
    assert {"voice", "text", "support-agent"} <= set(cfg.profiles)
    env = {"LIVETOKEN_GEMINI_API_KEY": "k", "LIVETOKEN_BACKEND_JWT_SECRET": GOOD_SECRET}
    assert load_env(env, cfg).issuer_secrets


BAD_CONFIGS = [
    pytest.param(BASE + "\nunknown_top = 1\n", "unknown_top: unknown key", id="unknown-top-level-key"),
    pytest.param(BASE + 'colour = "red"\n', "profiles.voice.colour: unknown key", id="unknown-profile-key"),
    pytest.param(
        BASE.replace('hs256_secret_env = "TEST_SECRET"', 'hs256_secret_env = "TEST_SECRET"\nfoo = 1'),
        "issuers[0].foo: unknown key",
        id="unknown-issuer-key",
    ),
    pytest.param(
        BASE.replace('voice = "Puck"', 'response_modalities = ["AUDIO", "TEXT"]'),
        "profiles.voice.response_modalities",
        id="audio-and-text",
    ),
    pytest.param(BASE + 'session_ttl = "21h"\n', "profiles.voice.session_ttl", id="ttl-over-20h"),
    pytest.param(BASE + 'session_ttl = "20h"\n', "profiles.voice.session_ttl", id="ttl-exactly-20h"),
    pytest.param(
        BASE.replace('hs256_secret_env = "TEST_SECRET"', ""),
        "issuers[0]: set exactly one key source",
        id="zero-key-sources",
    ),
    pytest.param(
        BASE.replace(
            'hs256_secret_env = "TEST_SECRET"', 'hs256_secret_env = "TEST_SECRET"\njwks_url = "https://idp.test/jwks"'
        ),
        "issuers[0]: set exactly one key source",
        id="two-key-sources",
    ),
    pytest.param(BASE + "require = {}\n", "profiles.voice.require", id="require-references-nothing"),
    pytest.param(BASE + "require = { scopes = [] }\n", "profiles.voice.require", id="require-empty-scopes"),
    pytest.param(
        BASE.replace('algorithms = ["HS256"]', 'algorithms = ["HS256", "RS256"]'),
        "issuers[0].algorithms",
        id="hs-and-rs-mixed",
    ),
    pytest.param(
        BASE.replace('algorithms = ["HS256"]', 'algorithms = ["none"]'), "issuers[0].algorithms", id="alg-none"
    ),
    pytest.param(BASE.replace('voice = "Puck"', 'voice = "Bob"'), "profiles.voice.voice", id="unknown-voice"),
    pytest.param(BASE + 'session_ttl = "soon"\n', "profiles.voice.session_ttl", id="unparseable-duration"),
    pytest.param(BASE + "uses = -1\n", "profiles.voice.uses", id="negative-uses"),
    pytest.param(BASE + '[limits]\nfail_mode = "maybe"\n', "limits.fail_mode", id="bad-fail-mode"),
    pytest.param(BASE + "[[limits.subject]]\nrate = 0\n", "limits.subject[0].rate", id="zero-rate"),
    pytest.param(BASE.replace("[profiles.voice]", "[profiles.Voice]"), "profiles.Voice", id="bad-profile-name"),
    pytest.param("[[issuers]\n", "not valid TOML", id="not-toml"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_check_config_names_the_bad_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    """`livetoken check-config` exits non-zero and its message names the offending key."""
    monkeypatch.setenv("TEST_SECRET", GOOD_SECRET)
    path = _write(tmp_path, text)
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert expected in err, err


def test_short_hs256_secret_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An HS256 secret under 32 bytes is refused, naming the issuer key and the variable, not the value."""
    monkeypatch.setenv("TEST_SECRET", "short-secret-value")
    assert main(["check-config", str(_write(tmp_path, BASE))]) == 1
    err = capsys.readouterr().err
    assert "issuers[0].hs256_secret_env" in err
    assert "TEST_SECRET" in err
    assert "short-secret-value" not in err


def test_secret_from_file_and_env_both_set_is_refused(tmp_path: Path) -> None:
    """Setting a secret both directly and as _FILE is ambiguous and refused."""
    cfg = load_file_config(_write(tmp_path, BASE))
    secret_file = tmp_path / "key"
    secret_file.write_text("k")
    env = {
        "TEST_SECRET": GOOD_SECRET,
        "LIVETOKEN_GEMINI_API_KEY": "a",
        "LIVETOKEN_GEMINI_API_KEY_FILE": str(secret_file),
    }
    with pytest.raises(ConfigError, match="LIVETOKEN_GEMINI_API_KEY"):
        load_env(env, cfg)


def test_api_key_file_is_read(tmp_path: Path) -> None:
    """LIVETOKEN_GEMINI_API_KEY_FILE supplies the key (Kubernetes/Docker secrets style) and it stays hidden in repr."""
    cfg = load_file_config(_write(tmp_path, BASE))
    secret_file = tmp_path / "key"
    secret_file.write_text("AIza-file-key\n")
    env = load_env({"TEST_SECRET": GOOD_SECRET, "LIVETOKEN_GEMINI_API_KEY_FILE": str(secret_file)}, cfg)
    assert env.gemini_api_key is not None
    assert env.gemini_api_key.reveal() == "AIza-file-key"
    assert "AIza" not in repr(env)


def test_check_config_subprocess_ok_and_bad(tmp_path: Path) -> None:
    """The real CLI, as a user runs it: OK for the example, exit 1 with the key named for a bad file."""
    exe = [sys.executable, "-m", "service.cli"]
    ok = subprocess.run([*exe, "check-config", "--no-env", str(EXAMPLE)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    bad = _write(tmp_path, BASE + "bogus = true\n")
    res = subprocess.run([*exe, "check-config", "--no-env", str(bad)], capture_output=True, text=True, check=False)
    assert res.returncode == 1
    assert "profiles.voice.bogus: unknown key" in res.stderr
