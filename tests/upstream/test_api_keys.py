"""The API key file and Google's refusals of a key: what counts as a key, what counts as Google refusing it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from service.config import ConfigError, Secret, load_env, parse_file_config
from service.config.keyfile import MAX_API_KEYS, parse_api_keys
from service.logging import fingerprint
from service.metrics import Metrics
from service.upstream.keys import ApiKeyRing, key_refusal

FILE_CONFIG = parse_file_config(
    {
        "issuers": [
            {
                "issuer": "https://issuer.test/",
                "audiences": ["a"],
                "algorithms": ["RS256"],
                "jwks_url": "https://issuer.test/jwks",
            }
        ],
        "profiles": {"voice": {"model": "gemini-3.8-live"}},
    }
)


def _error(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


def _bad(message: str, *details: dict[str, Any]) -> dict[str, Any]:
    return _error(400, "INVALID_ARGUMENT", message, *details)


def _denied(message: str, *details: dict[str, Any]) -> dict[str, Any]:
    return _error(403, "PERMISSION_DENIED", message, *details)


def _info(reason: str, **metadata: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com", **metadata},
    }


def _localized(message: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message}


INVALID = "API key not valid. Please pass a valid API key."
EXPIRED = "API key expired. Please renew the API key."
BLOCKED = (
    "Requests to this API generativelanguage.googleapis.com method "
    "google.ai.generativelanguage.v1beta.GenerativeService.StreamGenerateContent are blocked."
)
SUSPENDED = "Permission denied: Consumer 'api_key:AIzaSyExampleExampleExample000' has been suspended."
LEAKED = "Your API key was reported as leaked. Please use another API key."
NO_KEY = "holds no key (one key a line; blank lines and # comments are ignored)"
NOT_ONE_KEY = "is not one key (a key has no spaces; comments start a line with #)"


def test_the_key_file_lists_keys_in_order_without_blanks_comments_or_repeats() -> None:
    """One key a line, first used; blank lines, `#` lines, surrounding spaces and a repeated key are dropped."""
    text = "# rotated 2025-06-01 by ops\n\n  key-one  \n# the old one, until Google forgets it\nkey-two\nkey-one\n"
    assert [k.reveal() for k in parse_api_keys(text)] == ["key-one", "key-two"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", NO_KEY, id="empty"),
        pytest.param("# only a note\n\n", NO_KEY, id="comments"),
        pytest.param("good-key\nsecret-one secret-two\n", f"line 2 {NOT_ONE_KEY}", id="two-on-a-line"),
        pytest.param("good-key  # trailing note\n", f"line 1 {NOT_ONE_KEY}", id="trailing-comment"),
        pytest.param("".join(f"k{i}\n" for i in range(11)), f"holds 11 keys, more than {MAX_API_KEYS}", id="too-many"),
    ],
)
def test_a_key_file_that_is_not_a_list_of_keys_is_refused_without_quoting_it(text: str, message: str) -> None:
    """The message says what is wrong and on which line, never the line itself (it may hold a key)."""
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_api_keys(text)


def test_the_environment_reads_every_key_of_the_file(tmp_path: Path) -> None:
    """LIVETOKEN_GEMINI_API_KEY_FILE with two keys: the first is the key, the second a fallback, the file is
    remembered to be watched, and no key shows in the settings' repr."""
    key_file = tmp_path / "gemini-api-keys"
    key_file.write_text("# primary\nprimary-key-0001\nfallback-key-0002\n")
    env = load_env({"LIVETOKEN_GEMINI_API_KEY_FILE": str(key_file)}, FILE_CONFIG)
    assert env.gemini_api_key == Secret("primary-key-0001")
    assert env.gemini_api_fallback_keys == (Secret("fallback-key-0002"),)
    assert env.gemini_api_key_file == str(key_file)
    assert "-key-000" not in repr(env)


def test_a_key_from_the_environment_variable_has_no_fallback_and_no_file() -> None:
    """LIVETOKEN_GEMINI_API_KEY is one key, used as is (nothing to watch)."""
    env = load_env({"LIVETOKEN_GEMINI_API_KEY": "only-key"}, FILE_CONFIG)
    assert (env.gemini_api_key, env.gemini_api_fallback_keys, env.gemini_api_key_file) == (Secret("only-key"), (), None)


def test_a_key_file_without_a_key_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    """An empty key file is a configuration error naming LIVETOKEN_GEMINI_API_KEY_FILE."""
    key_file = tmp_path / "gemini-api-keys"
    key_file.write_text("\n# nothing yet\n")
    with pytest.raises(ConfigError) as info:
        load_env({"LIVETOKEN_GEMINI_API_KEY_FILE": str(key_file)}, FILE_CONFIG)
    assert str(info.value) == f"LIVETOKEN_GEMINI_API_KEY_FILE: {NO_KEY}"


@pytest.mark.parametrize(
    ("code", "body", "reason"),
    [
        pytest.param(
            400, _bad(INVALID, _info("API_KEY_INVALID"), _localized(INVALID)), "API_KEY_INVALID", id="invalid"
        ),
        pytest.param(
            400, _bad(EXPIRED, _info("API_KEY_INVALID"), _localized(EXPIRED)), "API_KEY_INVALID", id="expired"
        ),
        pytest.param(400, _bad(EXPIRED, _info("API_KEY_EXPIRED")), "API_KEY_EXPIRED", id="expired-reason"),
        pytest.param(
            403,
            _denied(BLOCKED, _info("API_KEY_SERVICE_BLOCKED", consumer="projects/1"), _localized(BLOCKED)),
            "API_KEY_SERVICE_BLOCKED",
            id="service-blocked",
        ),
        pytest.param(
            403,
            _denied(SUSPENDED, _info("CONSUMER_SUSPENDED", consumer="projects/1")),
            "CONSUMER_SUSPENDED",
            id="consumer-suspended",
        ),
        pytest.param(403, _denied(LEAKED), "PERMISSION_DENIED", id="leaked"),
    ],
)
def test_google_refusing_the_key_itself_is_recognised_by_its_reason(code: int, body: Any, reason: str) -> None:
    """Google's answers for an invalid, expired, blocked, suspended or leaked key (as reported from the real API)
    name the ErrorInfo reason, or PERMISSION_DENIED for the leaked key's bare 403; never Google's message."""
    assert key_refusal(code, body) == reason


@pytest.mark.parametrize(
    ("code", "body"),
    [
        pytest.param(400, _bad("field_mask is invalid"), id="bad-request"),
        pytest.param(400, _bad(INVALID), id="400-without-error-info"),
        pytest.param(403, _denied("The caller does not have permission"), id="403-not-the-key"),
        pytest.param(429, _error(429, "RESOURCE_EXHAUSTED", "Quota", _info("RATE_LIMIT_EXCEEDED")), id="quota"),
        pytest.param(500, _error(500, "INTERNAL", INVALID, _info("API_KEY_INVALID")), id="5xx"),
        pytest.param(400, _bad(INVALID, {**_info("API_KEY_INVALID"), "domain": "x.test"}), id="other-domain"),
        pytest.param(400, {"error": "API key not valid"}, id="not-google-shaped"),
        pytest.param(400, None, id="no-body"),
    ],
)
def test_other_refusals_are_not_blamed_on_the_key(code: int, body: Any) -> None:
    """A bad request, quota, a server error or a 403 about something else keep their meaning: no key fallback."""
    assert key_refusal(code, body) is None


def test_a_refused_key_goes_behind_the_others_for_the_cooldown_and_then_comes_back() -> None:
    """Order is configured order; a refused key is tried after the usable ones until its cool-down ends; the
    gauge counts usable and cooling keys."""
    now = [1000.0]
    metrics = Metrics()
    first, second, third = Secret("key-a"), Secret("key-b"), Secret("key-c")
    ring = ApiKeyRing([first, second, third], cooldown=300, metrics=metrics, clock=lambda: now[0])
    assert [k.secret for k in ring.attempt_order()] == [first, second, third]
    ring.refused(ring.attempt_order()[0], "API_KEY_INVALID", next_key=None)
    now[0] += 10
    ring.refused(ring.attempt_order()[0], "API_KEY_INVALID", next_key=None)  # key-b
    assert [k.secret for k in ring.attempt_order()] == [third, first, second]
    assert _gauge(metrics, "usable") == 1
    assert _gauge(metrics, "cooling") == 2
    now[0] += 291
    assert [k.secret for k in ring.attempt_order()] == [first, third, second]
    now[0] += 10
    assert [k.secret for k in ring.attempt_order()] == [first, second, third]


def test_replacing_the_keys_keeps_cooldowns_and_drops_the_metrics_of_removed_keys() -> None:
    """A key kept across a reload keeps its cool-down; a removed key's refusal series goes (labels stay bounded
    by the configured keys); the fingerprints added and removed are reported. The removed key stays behind the new
    ones as a fallback until a key of the new file mints."""
    metrics = Metrics()
    old, kept, new = Secret("key-old"), Secret("key-kept"), Secret("key-new")
    ring = ApiKeyRing([old, kept], cooldown=300, metrics=metrics)
    for key in ring.attempt_order():
        ring.refused(key, "API_KEY_INVALID", next_key=None)
    added, removed = ring.replace([kept, new])
    assert (added, removed) == ([fingerprint("key-new")], [fingerprint("key-old")])
    assert [k.secret for k in ring.attempt_order()] == [new, old, kept]  # the cooling ones, soonest back first
    ring.accepted(ring.attempt_order()[0])
    assert [k.secret for k in ring.attempt_order()] == [new, kept]
    text = metrics.render().decode()
    assert fingerprint("key-old") not in text
    kept_series = {"key": fingerprint("key-kept"), "reason": "API_KEY_INVALID"}
    assert metrics.registry.get_sample_value("livetoken_upstream_key_refusals_total", kept_series) == 1


def _gauge(metrics: Metrics, state: str) -> float | None:
    return metrics.registry.get_sample_value("livetoken_upstream_keys", {"state": state})


def test_the_docs_fingerprint_command_names_a_key_as_logs_and_metrics_do() -> None:
    """The shell line the key-rotation page gives operators to find a key's fingerprint prints what the service
    shows after `sha256:` (so an alert's key label can be matched to a key without the key ever being shown)."""
    readme = (Path(__file__).resolve().parents[2] / "docs" / "operations" / "keys.md").read_text()
    command = re.search(r"`(printf %s \"\$KEY\" \| sha256sum \| cut -c1-12)`", readme)
    assert command is not None
    key = "AIzaSy-example-" + "0" * 24
    shell = subprocess.run(
        ["/bin/sh", "-c", command.group(1)], env={"KEY": key}, capture_output=True, text=True, check=True
    )
    assert "sha256:" + shell.stdout.strip() == fingerprint(key)


def test_keys_a_file_replaced_come_before_a_refused_new_key() -> None:
    """A new file whose key Google refused: the next mints try the replaced key before the refused one (which still
    comes last), instead of being refused first on every mint."""
    metrics = Metrics()
    old, new = Secret("key-old"), Secret("key-new")
    ring = ApiKeyRing([old], cooldown=300, metrics=metrics)
    ring.replace([new])
    [first, *_] = ring.attempt_order()
    ring.refused(first, "API_KEY_INVALID", next_key=None)
    assert [k.secret for k in ring.attempt_order()] == [old, new]
