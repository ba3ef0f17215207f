"""Reloading the configuration without a restart: SIGHUP, or a change of the TOML file.

The new file is read and validated exactly as `check-config` does; an invalid file, or one that changes what
only a restart can change (the listener, Redis, the fail mode), is refused with that message and the running
configuration stays. A valid one is swapped in whole, between requests: a request keeps the configuration it
started with to its end. Each reload's outcome is a log line and `livetoken_config_reloads_total{outcome}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from service.config import ConfigError, Settings, load_env, load_file_config
from service.logging import get_logger
from service.metrics import Metrics

log = get_logger("livetoken.reload")

# What a running process cannot take over: it was bound, connected or sized at start-up.
RESTART_ONLY = (
    ("server", ("host", "port", "max_connections", "header_timeout", "keepalive_timeout", "shutdown_grace")),
    ("limits", ("fail_mode", "redis_timeout", "redis_cluster", "key_prefix")),
)


def read_settings(current: Settings) -> Settings:
    """The configuration file as it is now, with the environment, validated; raises ConfigError."""
    if current.config_path is None:
        raise ConfigError("dev mode has no configuration file to reload")
    file = load_file_config(current.config_path)
    env = load_env(os.environ, file)
    new = Settings(file=file, env=env, dev_mode=current.dev_mode, config_path=current.config_path)
    for section, names in RESTART_ONLY:
        for name in names:
            if getattr(getattr(file, section), name) != getattr(getattr(current.file, section), name):
                raise ConfigError(f"{section}.{name}: changes only take effect after a restart")
    # `serve --cors-origin` is part of how the process was started: keep it.
    extra = current.env.cors_allow_origins[len(_env_origins(current)) :]
    return new.with_cors_origins(list(extra)) if extra else new


def _env_origins(settings: Settings) -> tuple[str, ...]:
    raw = os.environ.get("LIVETOKEN_CORS_ALLOW_ORIGINS") or ""
    return tuple(o.strip() for o in raw.split(",") if o.strip())


def _fingerprint(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


class ConfigReloader:
    """Watches the configuration file (and SIGHUP) and applies each valid change through `apply`."""

    def __init__(
        self,
        current: Callable[[], Settings],
        apply: Callable[[Settings], Awaitable[None]],
        metrics: Metrics,
        interval: float = 1.0,
        also_on_sighup: Callable[[], None] | None = None,
    ) -> None:
        self._also_on_sighup = also_on_sighup
        self._current = current
        self._apply = apply
        self._metrics = metrics
        self._interval = interval
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._seen: str | None = None
        self._pending: asyncio.Task[bool] | None = None  # kept referenced until done

    async def reload(self, trigger: str) -> bool:
        """Read, validate and apply the file now; False (and the running configuration kept) when refused."""
        async with self._lock:
            current = self._current()
            if current.config_path is not None:
                # This reload reads the file as it is now: the watcher must not read the same change again (a
                # SIGHUP after an edit was followed by a second reload from the watcher).
                self._seen = _fingerprint(current.config_path)
            try:
                new = read_settings(current)
                await self._apply(new)
            except ConfigError as exc:
                message = " ".join(str(exc).splitlines())
                self._metrics.inc(self._metrics.config_reloads, "refused")
                log.error("config_reload_refused", trigger=trigger, error=message)
                return False
            self._metrics.inc(self._metrics.config_reloads, "ok")
            log.info("config_reloaded", trigger=trigger, profiles=sorted(new.profiles))
            return True

    def start(self) -> None:
        """Watch the file and listen for SIGHUP (where the platform has it)."""
        path = self._current().config_path
        if path is None:
            return
        self._seen = _fingerprint(path)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no SIGHUP
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        self._task = loop.create_task(self._watch(path))

    def _on_sighup(self) -> None:
        if self._also_on_sighup is not None:
            self._also_on_sighup()  # the API key file is re-read on SIGHUP too
        self._pending = asyncio.get_running_loop().create_task(self.reload("sighup"))

    async def _watch(self, path: str) -> None:
        while True:
            await asyncio.sleep(self._interval)
            seen = _fingerprint(path)
            if seen is not None and seen != self._seen:
                self._seen = seen
                await self.reload("file_changed")

    async def stop(self) -> None:
        """Stop watching."""
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
