"""The file watchers act once per change: the configuration file is reloaded once for each edit, and a key file
that is refused is logged (and counted) once, not at every poll while it stays wrong."""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from service.config import Secret, Settings
from service.issuing import reload
from service.logging import fingerprint
from service.metrics import Metrics
from service.upstream import keys as upstream_keys
from service.upstream.keys import ApiKeyRing, KeyFileWatcher
from tests.support.service import build_settings, service_env, write_config
from tests.support.waiting import until

POLL = 0.02  # the watchers poll every second in the service; faster here, and the test counts polls, not time
EXTRA_PROFILE = '\n[profiles.extra{n}]\nmodel = "gemini-3.8-live"\nresponse_modalities = ["AUDIO"]\n'


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    """Count the calls of `module.name` (one per poll of a watcher); the count is the list's only item."""
    calls = [0]
    real = getattr(module, name)

    def counted(*args: Any) -> Any:
        calls[0] += 1
        return real(*args)

    monkeypatch.setattr(module, name, counted)
    return calls


def _polled(calls: list[int], more: int) -> Callable[[], Awaitable[bool]]:
    """Condition: the watcher has polled `more` times after now."""
    target = calls[0] + more

    async def condition() -> bool:
        return calls[0] >= target

    return condition


def _replace(path: Path, text: str) -> None:
    """Write `path` whole, in one rename (as editors and ConfigMap updates do): no poll reads it half-written."""
    staged = path.with_suffix(".new")
    staged.write_text(text)
    os.replace(staged, path)


async def test_the_config_file_watcher_reloads_once_per_change(
    tmp_path: Path, emulator: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two edits of the file, each followed by ten more polls: exactly two reloads, each logged once as
    `file_changed` and counted, the second with the second edit's profile."""
    env = service_env(emulator, redis_url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = write_config(tmp_path)
    current = [build_settings(config, env)]
    metrics = Metrics()

    async def apply(new: Settings) -> None:
        current[0] = new

    polls = _counting(monkeypatch, reload, "_fingerprint")
    reloader = reload.ConfigReloader(lambda: current[0], apply, metrics, interval=POLL)

    def reloads(count: int) -> Callable[[], Awaitable[bool]]:
        async def condition() -> bool:
            return (
                metrics.registry.get_sample_value("livetoken_config_reloads_total", {"outcome": "ok"}) or 0
            ) >= count

        return condition

    with capture_logs() as logs:
        reloader.start()
        try:
            for edit in (1, 2):
                _replace(config, config.read_text() + EXTRA_PROFILE.format(n=edit))
                await until(reloads(edit), f"edit {edit} is reloaded")
                await until(_polled(polls, 10), "the watcher has read the file ten more times")
        finally:
            await reloader.stop()
    reloaded = [(e["trigger"], "extra2" in e["profiles"]) for e in logs if e["event"] == "config_reloaded"]
    assert reloaded == [("file_changed", False), ("file_changed", True)]
    assert metrics.registry.get_sample_value("livetoken_config_reloads_total", {"outcome": "ok"}) == 2
    assert "extra2" in current[0].profiles


@pytest.mark.parametrize(
    ("spoil", "error"),
    [
        pytest.param(
            lambda path: _replace(path, "# the keys moved to the vault\n"),
            "holds no key (one key a line; blank lines and # comments are ignored)",
            id="no-key",
        ),
        pytest.param(
            lambda path: path.unlink(),
            "cannot read {path!r}: No such file or directory",
            id="missing",
        ),
    ],
)
async def test_a_refused_key_file_is_logged_once_not_at_every_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spoil: Callable[[Path], None], error: str
) -> None:
    """The key file becomes unusable (no key in it, or gone) and stays so for twenty more polls: one
    `api_key_file_refused` line and one refusal counted, and the running key stays."""
    key = "test-gemini-key-" + secrets.token_urlsafe(18)
    path = tmp_path / "gemini-api-keys"
    path.write_text(f"{key}\n")
    metrics = Metrics()
    ring = ApiKeyRing((Secret(key),), 60.0, metrics)
    polls = _counting(monkeypatch, upstream_keys, "_identity")
    watcher = KeyFileWatcher(str(path), ring, metrics, interval=POLL)

    async def refused() -> bool:
        return (
            metrics.registry.get_sample_value("livetoken_upstream_key_file_reloads_total", {"outcome": "refused"}) == 1
        )

    with capture_logs() as logs:
        watcher.start()
        try:
            spoil(path)
            await until(refused, "the spoilt key file is refused")
            await until(_polled(polls, 20), "the watcher has looked at the file twenty more times")
        finally:
            await watcher.aclose()
    assert [(e["error"], e["kept"]) for e in logs if e["event"] == "api_key_file_refused"] == [
        (error.format(path=str(path)), [fingerprint(key)])
    ]
    assert metrics.registry.get_sample_value("livetoken_upstream_key_file_reloads_total", {"outcome": "refused"}) == 1
    assert ring.fingerprints == [fingerprint(key)]
