"""The Gemini API keys a mint may use, and the key file they are re-read from without a restart.

A mint tries the keys in the configured order. When Google refuses a key itself (invalid, expired, blocked,
leaked: `key_refusal`), the same mint goes on with the next key at once, and the refused key moves behind the
others for `upstream.key_cooldown`; it is still tried last, so a request never fails without trying every key
(Google has been seen to refuse a good key for a moment). Keys are named by fingerprint in logs and metrics.

`LIVETOKEN_GEMINI_API_KEY_FILE` is polled once a second by content, following symlinks: a Kubernetes Secret
volume replaces it by swapping its `..data` symlink, which changes neither the path nor, always, the mtime.
A change is taken when the file was replaced (another file now: a rename, or the symlink swap) or, edited in
place, once the same content has been read twice a poll apart (a file being written is not taken half-written);
SIGHUP takes it at once. A file that does not parse (a Google key cut short included) is refused and the running
keys stay. The keys a new file replaces stay behind its keys as fallbacks until one of the new keys has minted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from service.config import Secret
from service.config.keyfile import MAX_API_KEYS, parse_api_keys, read_key_file_text
from service.logging import fingerprint, get_logger
from service.metrics import Metrics

log = get_logger("livetoken.upstream")

# google.rpc.ErrorInfo reasons (domain googleapis.com) that are about the key or the project it belongs to:
# another key, perhaps of another project, may well be accepted. Quota (429) is not among them on purpose.
KEY_REFUSAL_REASONS = frozenset(
    {
        "API_KEY_INVALID",  # unknown, deleted or expired ("API key expired. Please renew the API key.")
        "API_KEY_EXPIRED",
        "API_KEY_SERVICE_BLOCKED",
        "API_KEY_HTTP_REFERRER_BLOCKED",
        "API_KEY_IP_ADDRESS_BLOCKED",
        "API_KEY_ANDROID_APP_BLOCKED",
        "API_KEY_IOS_APP_BLOCKED",
        "CONSUMER_SUSPENDED",
        "CONSUMER_INVALID",
        "SERVICE_DISABLED",
        "BILLING_DISABLED",
    }
)
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def key_refusal(code: int, body: Any) -> str | None:
    """Why Google refused the API key itself, from an error answer's status and JSON body; None otherwise.

    The reason is an ErrorInfo reason from the set above, or `PERMISSION_DENIED` for a 403 that names no reason
    but the API key (Google's answer for a key reported as leaked). Google's message is never returned: it can
    quote the key ("Consumer 'api_key:…' has been suspended").
    """
    if code not in (400, 403) or not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return None
    error = body["error"]
    details = error.get("details")
    infos = (
        [d for d in details if isinstance(d, dict) and d.get("@type") == ERROR_INFO]
        if isinstance(details, list)
        else []
    )
    for info in infos:
        if info.get("domain") == "googleapis.com" and info.get("reason") in KEY_REFUSAL_REASONS:
            return str(info["reason"])
    message = error.get("message")
    if code == 403 and not infos and isinstance(message, str) and "api key" in message.lower():
        return "PERMISSION_DENIED"
    return None


@dataclass(eq=False, slots=True)
class ApiKey:
    """One configured key: the secret, its fingerprint for logs and metrics, and its cool-down."""

    secret: Secret
    fingerprint: str
    refused_until: float = 0.0  # monotonic seconds; 0 = usable


def _key(secret: Secret) -> ApiKey:
    return ApiKey(secret, fingerprint(secret.reveal()))


class ApiKeyRing:
    """The configured keys in order, with a cool-down for the ones Google refused; replaced whole on reload."""

    def __init__(
        self,
        keys: Sequence[Secret],
        cooldown: float,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not keys:
            raise ValueError("at least one API key is needed")
        self._cooldown = cooldown
        self._metrics = metrics
        self._clock = clock
        self._keys = tuple(map(_key, keys))
        self._previous: tuple[ApiKey, ...] = ()  # replaced keys, tried last until a new key has minted
        self._labels: set[tuple[str, str]] = set()  # refusal-counter children, removed with their key
        metrics.upstream_keys.labels(state="usable").set_function(self.usable_count)
        metrics.upstream_keys.labels(state="cooling").set_function(lambda: len(self._keys) - self.usable_count())

    def set_cooldown(self, seconds: float) -> None:
        """Take a reloaded `upstream.key_cooldown` (keys already cooling keep their end time)."""
        self._cooldown = seconds

    @property
    def fingerprints(self) -> list[str]:
        """The keys' fingerprints in configured order."""
        return [k.fingerprint for k in self._keys]

    def usable_count(self) -> int:
        """Keys not in a cool-down now."""
        now = self._clock()
        return sum(1 for k in self._keys if k.refused_until <= now)

    def attempt_order(self) -> tuple[ApiKey, ...]:
        """The keys one mint may try, in order: usable ones as configured, then cooling ones, soonest back first."""
        now = self._clock()
        if all(k.refused_until <= now for k in self._keys):
            return self._keys + self._previous if self._previous else self._keys
        # Usable keys (the file's, then the ones it replaced) before cooling ones: a new file's refused key is not
        # tried first on every mint; every key is still tried.
        keys = (*self._keys, *self._previous)
        usable = [k for k in keys if k.refused_until <= now]
        cooling = sorted((k for k in keys if k.refused_until > now), key=lambda k: k.refused_until)
        return (*usable, *cooling)

    def refused(self, key: ApiKey, reason: str, *, next_key: ApiKey | None) -> None:
        """Google refused `key` for `reason`: count it, log it by fingerprint, put it behind the others a while."""
        key.refused_until = self._clock() + self._cooldown
        if key in self._keys:  # a key removed by a reload meanwhile is not counted: labels stay the configured keys
            self._labels.add((key.fingerprint, reason))
            self._metrics.upstream_key_refusals.labels(key=key.fingerprint, reason=reason).inc()
        log.warning(
            "upstream_key_refused",
            key=key.fingerprint,
            reason=reason,
            cooldown_s=self._cooldown,
            next_key=next_key.fingerprint if next_key is not None else None,
        )

    def accepted(self, key: ApiKey) -> None:
        """Google accepted `key`: whatever cool-down it had is over; a key of the current file proves it, so the
        keys it replaced are no longer kept as fallbacks."""
        if key.refused_until:
            key.refused_until = 0.0
        if self._previous and key in self._keys:
            log.info(
                "api_key_previous_dropped", keys=[k.fingerprint for k in self._previous], proven_by=key.fingerprint
            )
            self._previous = ()

    def replace(self, keys: Sequence[Secret]) -> tuple[list[str], list[str]]:
        """Use `keys` from now on (a key kept keeps its cool-down); the fingerprints added and removed."""
        if not keys:
            raise ValueError("at least one API key is needed")
        old = {k.secret: k for k in self._keys}
        self._keys = tuple(old.get(k) or _key(k) for k in keys)
        # The keys replaced stay behind the new ones (a new file's keys may be refused by Google: a wrong paste, a
        # key of another project), until a new key mints.
        current = {k.secret for k in self._keys}
        self._previous = tuple(k for k in (*old.values(), *self._previous) if k.secret not in current)[:MAX_API_KEYS]
        kept = {k.fingerprint for k in self._keys}
        for labels in [pair for pair in self._labels if pair[0] not in kept]:
            self._metrics.upstream_key_refusals.remove(*labels)
            self._labels.discard(labels)
        before = {k.fingerprint for k in old.values()}
        return [f for f in self.fingerprints if f not in before], sorted(before - kept)


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file `path` leads to (following symlinks), or None if there is none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


class KeyFileWatcher:
    """Re-reads the key file when its content changes (polled) or on SIGHUP, and hands new keys to the ring."""

    def __init__(self, path: str, ring: ApiKeyRing, metrics: Metrics, interval: float = 1.0) -> None:
        self._path = path
        self._ring = ring
        self._metrics = metrics
        self._interval = interval
        self._wake = asyncio.Event()
        self._seen = ""
        self._pending = ""  # a changed content seen once, taken if the next poll reads it again
        self._identity = _identity(path)  # which file the path leads to (a rename or symlink swap changes it)
        self._task: asyncio.Task[None] | None = None
        self._sighup = False
        seen, text, error = self._read()
        # The ring was built from the settings, which read this file a moment ago: if it still holds those keys
        # there is nothing to reload; if it changed in between, the first check applies it.
        with contextlib.suppress(ValueError):
            if error is None and [fingerprint(k.reveal()) for k in parse_api_keys(text)] == ring.fingerprints:
                self._seen = seen

    def start(self, *, sighup: bool = False) -> None:
        """Start polling; with `sighup`, SIGHUP checks the file at once (main thread only, else ignored)."""
        self._task = asyncio.create_task(self._run(), name="api-key-file-watcher")
        if sighup and threading.current_thread() is threading.main_thread():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # no signals on this loop
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
                self._sighup = True

    def reload(self) -> None:
        """Check the file now (what SIGHUP does); the check runs on the watcher's task."""
        self._wake.set()

    async def aclose(self) -> None:
        """Stop polling and give SIGHUP back."""
        if self._sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._sighup = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            trigger = "sighup" if self._wake.is_set() else "poll"
            self._wake.clear()
            try:
                await self.check(trigger)
            except Exception:  # the watcher outlives any surprise; the running keys stay
                log.exception("api_key_file_check_failed", path=self._path)

    async def check(self, trigger: str = "poll") -> bool:
        """Read the file; if it changed, use its keys (or refuse it and keep the running ones). Whether it changed."""
        seen, text, error = await asyncio.to_thread(self._read)
        identity = await asyncio.to_thread(_identity, self._path)
        changed = seen != self._seen
        if trigger == "sighup":
            log.info("api_key_file_checked", path=self._path, trigger=trigger, changed=changed)
        if not changed:
            self._pending = ""
            return False
        # Replaced: another file now (a rename, a symlink swap); a file that went missing or appeared is not.
        replaced = identity is not None and self._identity is not None and identity != self._identity
        self._identity = identity
        if trigger == "poll" and not replaced and seen != self._pending:
            self._pending = seen  # edited in place: take it once it reads the same a poll later
            return False
        self._seen, self._pending = seen, ""
        try:
            if error is not None:
                raise ValueError(error)
            keys = parse_api_keys(text)
        except ValueError as exc:
            self._metrics.upstream_key_file_reloads.labels(outcome="refused").inc()
            log.error(
                "api_key_file_refused", path=self._path, trigger=trigger, error=str(exc), kept=self._ring.fingerprints
            )
            return True
        added, removed = self._ring.replace(keys)
        self._metrics.upstream_key_file_reloads.labels(outcome="ok").inc()
        log.info(
            "api_key_file_reloaded",
            path=self._path,
            trigger=trigger,
            keys=self._ring.fingerprints,
            added=added,
            removed=removed,
        )
        return True

    def _read(self) -> tuple[str, str, str | None]:
        """(what identifies this content or failure, the text, the failure): a repeated failure is one change."""
        try:
            text = read_key_file_text(self._path)
        except ValueError as exc:
            return f"error:{exc}", "", str(exc)
        return hashlib.sha256(text.encode()).hexdigest(), text, None
