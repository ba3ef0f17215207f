"""Rotating the Gemini API key without downtime: several keys in LIVETOKEN_GEMINI_API_KEY_FILE, the next one used
within the same request when Google refuses one, the file re-read when a Secret volume update replaces it.

Google here is a private emulator, so the tests can revoke keys and count what Google saw with each key.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from service.config import Settings
from service.logging import fingerprint
from service.metrics import Metrics
from tests.support.emulator import EmulatorProcess
from tests.support.processes import serving
from tests.support.service import auth, build_settings, running_app, service_env, write_config
from tests.support.waiting import until, wait_until

KEY_FILE = "gemini-api-keys"
CALLERS = 4
LIMITS = 'subject = [{ rate = 100000, period = "1m", burst = 100000 }]'
TOKEN = {"profile": "voice"}


class SecretVolume:
    """A directory laid out as the kubelet lays out a Secret volume: the key file is a symlink through `..data`,
    and an update writes a new timestamped directory and swaps `..data` to it atomically."""

    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.root = root
        self.path = root / KEY_FILE
        self._generation = 0

    def write(self, *lines: str) -> None:
        """Publish a new version of the key file, one line each, as one atomic swap."""
        self._generation += 1
        version = self.root / f"..2025_06_01_12_00_{self._generation:02d}.{secrets.token_hex(4)}"
        version.mkdir()
        (version / KEY_FILE).write_text("".join(f"{line}\n" for line in lines))
        data = self.root / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        staged = self.root / "..data_tmp"
        staged.symlink_to(version.name)
        staged.replace(data)
        if not self.path.is_symlink():
            self.path.symlink_to(f"..data/{KEY_FILE}")
        if old is not None:
            shutil.rmtree(self.root / old)


@pytest.fixture(scope="module")
def google(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """A private emulator (these tests revoke keys, which the shared one must not see)."""
    proc = EmulatorProcess(tmp_path_factory.mktemp("emulator-keys"), "--speed", "0")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def emu(google: EmulatorProcess) -> EmulatorProcess:
    """The private emulator with no key but its own, and nothing counted yet."""
    google.admin("POST", "/reset")
    return google


def new_key(emu: EmulatorProcess) -> str:
    """A key Google (the emulator) accepts."""
    key = "test-gemini-key-" + secrets.token_urlsafe(18)
    emu.set_key(key)
    return key


def key_file_env(emu: EmulatorProcess, redis_url: str, key_file: Path) -> dict[str, str]:
    """The test service's environment with its keys in `key_file`."""
    env = service_env(emu, redis_url, LIVETOKEN_GEMINI_API_KEY_FILE=str(key_file))
    del env["LIVETOKEN_GEMINI_API_KEY"]
    return env


def key_file_settings(
    tmp_path: Path, emu: EmulatorProcess, redis_url: str, key_file: Path, cooldown: str | None = None
) -> Settings:
    """The test service reading its keys from `key_file` (and `upstream.key_cooldown` if given)."""
    config = write_config(tmp_path, LIMITS)
    if cooldown is not None:
        config.write_text(config.read_text().replace("[upstream]\n", f'[upstream]\nkey_cooldown = "{cooldown}"\n', 1))
    return build_settings(config, key_file_env(emu, redis_url, key_file))


def log_events(output: str) -> list[dict[str, Any]]:
    """The JSON log lines of a server's output."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def scraped(exposition: str, name: str, **labels: str) -> float:
    """A sample's value in a /metrics text (0 when the series is not there)."""
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


def minted_with(emu: EmulatorProcess, key: str, at_least: int) -> Callable[[], Awaitable[bool]]:
    """Condition: Google has minted at least `at_least` tokens with `key`."""

    async def condition() -> bool:
        return int(emu.key_usage().get(fingerprint(key), {}).get("minted", 0)) >= at_least

    return condition


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """A sample's value (0 when the series does not exist)."""
    return metrics.registry.get_sample_value(name, labels) or 0.0


def keys_seen(emu: EmulatorProcess) -> list[str]:
    """The key fingerprint of each auth_tokens request Google received, in order."""
    return [request["key"] for request in emu.requests()]


async def test_rotating_keys_under_load_fails_no_request(tmp_path: Path, emu: EmulatorProcess, redis_url: str) -> None:
    """`livetoken serve` with two keys in a Secret volume and four callers minting without pause over real
    connections. Google revokes key 1: every request is still 201 (the same mint moves on to key 2). The volume is
    updated to key 2 + key 3: the server takes it without a restart. Google revokes key 2: still 201, on key 3.
    Google saw a revoked key only from the mints in flight when it was revoked (then it cooled down), and no key
    reached the logs, the metrics or a body."""
    k1, k2, k3 = new_key(emu), new_key(emu), new_key(emu)
    fp1, fp2, fp3 = fingerprint(k1), fingerprint(k2), fingerprint(k3)
    volume = SecretVolume(tmp_path / "secret")
    volume.write("# livetoken's Gemini API keys: the first is used, the others are fallbacks", k1, "", k2)
    statuses: list[int] = []
    bodies: list[str] = []
    stop = asyncio.Event()
    with serving(write_config(tmp_path, LIMITS), key_file_env(emu, redis_url, volume.path)) as (proc, url):
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:

            async def caller(n: int) -> None:
                headers = auth(sub=f"caller-{n}")
                while not stop.is_set():
                    resp = await http.post("/v1/tokens", json=TOKEN, headers=headers)
                    statuses.append(resp.status_code)
                    bodies.append(resp.text)

            async def reloaded() -> bool:
                scrape = (await http.get("/metrics")).text
                return scraped(scrape, "livetoken_upstream_key_file_reloads_total", outcome="ok") == 1

            callers = [asyncio.create_task(caller(n)) for n in range(CALLERS)]
            try:
                await until(minted_with(emu, k1, 20), "key 1 has minted under load", within=30)
                emu.set_key(k1, "revoked")
                await until(minted_with(emu, k2, 20), "key 2 has minted in its place", within=30)
                volume.write(k2, k3)
                await until(reloaded, "the server has taken the updated key file", within=30)
                emu.set_key(k2, "revoked")
                await until(minted_with(emu, k3, 20), "key 3 has minted in its place", within=30)
            finally:
                stop.set()
                await asyncio.gather(*callers)
            scrape = (await http.get("/metrics")).text
    logs = log_events(proc.text)

    usage = emu.key_usage()
    one, two, three = usage[fp1], usage[fp2], usage[fp3]
    assert len(statuses) >= 60
    assert Counter(statuses) == {201: len(statuses)}
    assert 1 <= one["refused"] <= CALLERS
    assert 1 <= two["refused"] <= CALLERS
    assert three["refused"] == 0
    assert all(u["requests"] == u["refused"] + u["minted"] for u in (one, two, three))
    assert one["minted"] + two["minted"] + three["minted"] == len(statuses)
    assert set(usage) == {fp1, fp2, fp3, fingerprint(emu.api_key)}
    assert usage[fingerprint(emu.api_key)]["requests"] == 0
    refusals = Counter(e["key"] for e in logs if e["event"] == "upstream_key_refused")
    assert refusals == {fp1: one["refused"], fp2: two["refused"]}
    assert scraped(scrape, "livetoken_upstream_key_refusals_total", key=fp2, reason="API_KEY_INVALID") == two["refused"]
    assert scraped(scrape, "livetoken_upstream_keys", state="usable") == 1
    reloads = [
        (e["trigger"], e["keys"], e["added"], e["removed"]) for e in logs if e["event"] == "api_key_file_reloaded"
    ]
    assert reloads == [("poll", [fp2, fp3], [fp3], [fp1])]
    seen = proc.text + scrape + "".join(bodies) + (emu.state_dir / "emulator.log").read_text()
    assert [k for k in (k1, k2, k3) if k in seen] == []


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        pytest.param("revoked", "API_KEY_INVALID", id="revoked"),
        pytest.param("expired", "API_KEY_INVALID", id="expired"),
        pytest.param("blocked", "API_KEY_SERVICE_BLOCKED", id="blocked"),
        pytest.param("leaked", "PERMISSION_DENIED", id="leaked"),
    ],
)
async def test_a_key_google_refuses_is_replaced_within_the_same_request(
    tmp_path: Path, emu: EmulatorProcess, redis_url: str, state: str, reason: str
) -> None:
    """Key 1 revoked, expired, blocked or reported leaked: the first request makes two attempts (key 1 refused,
    key 2 mints) and answers 201; the next goes straight to key 2 while key 1 cools down."""
    k1, k2 = new_key(emu), new_key(emu)
    emu.set_key(k1, state)
    key_file = tmp_path / KEY_FILE
    key_file.write_text(f"{k1}\n{k2}\n")
    metrics = Metrics()
    async with running_app(key_file_settings(tmp_path, emu, redis_url, key_file), metrics) as client:
        first = await client.post("/v1/tokens", json=TOKEN, headers=auth())
        second = await client.post("/v1/tokens", json=TOKEN, headers=auth())
    assert (first.status_code, second.status_code) == (201, 201)
    assert keys_seen(emu) == [fingerprint(k1), fingerprint(k2), fingerprint(k2)]
    assert sample(metrics, "livetoken_upstream_key_refusals_total", key=fingerprint(k1), reason=reason) == 1
    assert sample(metrics, "livetoken_upstream_retries_total") == 0


async def test_a_refused_key_is_tried_first_again_after_its_cooldown(
    tmp_path: Path, emu: EmulatorProcess, redis_url: str
) -> None:
    """With `upstream.key_cooldown = "1s"`: key 1 refused, the mint moves to key 2; once the cool-down is over
    (the gauge shows both keys usable) and Google accepts key 1 again, the next mint uses key 1 alone."""
    k1, k2 = new_key(emu), new_key(emu)
    emu.set_key(k1, "revoked")
    key_file = tmp_path / KEY_FILE
    key_file.write_text(f"{k1}\n{k2}\n")
    metrics = Metrics()

    async def both_usable() -> bool:
        return sample(metrics, "livetoken_upstream_keys", state="usable") == 2

    settings = key_file_settings(tmp_path, emu, redis_url, key_file, cooldown="1s")
    async with running_app(settings, metrics) as client:
        first = await client.post("/v1/tokens", json=TOKEN, headers=auth())
        assert sample(metrics, "livetoken_upstream_keys", state="cooling") == 1
        emu.set_key(k1, "valid")
        await until(both_usable, "key 1's cool-down is over")
        again = await client.post("/v1/tokens", json=TOKEN, headers=auth())
    assert (first.status_code, again.status_code) == (201, 201)
    assert keys_seen(emu) == [fingerprint(k1), fingerprint(k2), fingerprint(k1)]


async def test_when_google_refuses_every_key_the_caller_gets_502_and_no_secret(
    tmp_path: Path, emu: EmulatorProcess, redis_url: str
) -> None:
    """Both keys refused: 502 upstream-rejected after one attempt per key, with one log line naming both keys by
    fingerprint. Keys in their cool-down are still tried (last), so once Google accepts key 2 again the very
    next request is 201, without waiting for the cool-down."""
    k1, k2 = new_key(emu), new_key(emu)
    emu.set_key(k1, "revoked")
    emu.set_key(k2, "expired")
    key_file = tmp_path / KEY_FILE
    key_file.write_text(f"{k1}\n{k2}\n")
    with capture_logs() as logs:
        async with running_app(key_file_settings(tmp_path, emu, redis_url, key_file)) as client:
            first = await client.post("/v1/tokens", json=TOKEN, headers=auth())
            second = await client.post("/v1/tokens", json=TOKEN, headers=auth())
            emu.set_key(k2, "valid")
            third = await client.post("/v1/tokens", json=TOKEN, headers=auth())
    fp1, fp2 = fingerprint(k1), fingerprint(k2)
    assert [r.status_code for r in (first, second, third)] == [502, 502, 201]
    assert first.json()["type"].endswith("/upstream-rejected")
    assert first.json()["detail"] == "The Live API refused to issue a token."
    assert keys_seen(emu) == [fp1, fp2, fp1, fp2, fp1, fp2]
    exhausted = [e["keys"] for e in logs if e["event"] == "upstream_all_keys_refused"]
    assert exhausted == [[fp1, fp2], [fp1, fp2]]
    seen = first.text + second.text + json.dumps(logs, default=str)
    assert [k for k in (k1, k2) if k in seen] == []


async def test_a_key_file_without_a_key_is_refused_and_the_running_keys_stay(
    tmp_path: Path, emu: EmulatorProcess, redis_url: str
) -> None:
    """The volume is updated with no key in it: the reload is refused (counted, logged by reason), mints go on
    with key 1; the next update with key 2 is taken and mints move to key 2."""
    k1, k2 = new_key(emu), new_key(emu)
    volume = SecretVolume(tmp_path / "secret")
    volume.write(k1)
    metrics = Metrics()

    def reloads(outcome: str) -> Callable[[], Awaitable[bool]]:
        async def condition() -> bool:
            return sample(metrics, "livetoken_upstream_key_file_reloads_total", outcome=outcome) == 1

        return condition

    with capture_logs() as logs:
        async with running_app(key_file_settings(tmp_path, emu, redis_url, volume.path), metrics) as client:
            volume.write("# moved to the new vault")
            await until(reloads("refused"), "the empty key file has been refused")
            kept = await client.post("/v1/tokens", json=TOKEN, headers=auth())
            volume.write(k2)
            await until(reloads("ok"), "the key file with key 2 has been taken")
            moved = await client.post("/v1/tokens", json=TOKEN, headers=auth())
    assert (kept.status_code, moved.status_code) == (201, 201)
    assert keys_seen(emu) == [fingerprint(k1), fingerprint(k2)]
    refused = [(e["error"], e["kept"]) for e in logs if e["event"] == "api_key_file_refused"]
    assert refused == [
        ("holds no key (one key a line; blank lines and # comments are ignored)", [fingerprint(k1)]),
    ]


def test_sighup_rereads_the_key_file_of_a_running_server(tmp_path: Path, emu: EmulatorProcess, redis_url: str) -> None:
    """`livetoken serve` with a key file: after the file is rewritten and the process gets SIGHUP, it logs the
    check, keeps serving (SIGHUP does not end it) and mints with the new key; no key is printed."""
    k1, k2 = new_key(emu), new_key(emu)
    key_file = tmp_path / KEY_FILE
    key_file.write_text(f"{k1}\n")
    with serving(write_config(tmp_path, LIMITS), key_file_env(emu, redis_url, key_file)) as (proc, url):
        key_file.write_text(f"# rotated\n{k2}\n")
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: any(
                e.get("event") == "api_key_file_checked" and e.get("trigger") == "sighup" for e in log_events(proc.text)
            ),
            "the server has checked the key file on SIGHUP",
        )
        resp = httpx.post(f"{url}/v1/tokens", json=TOKEN, headers=auth(), timeout=10)
        alive = proc.proc.poll() is None
    assert resp.status_code == 201, resp.text
    assert alive
    assert keys_seen(emu)[-1] == fingerprint(k2)
    assert [k for k in (k1, k2) if k in proc.text] == []


def google_key(emu: EmulatorProcess) -> str:
    """A key in Google's own format (AIza and 35 more characters) that the emulator accepts."""
    key = "AIzaSy" + secrets.token_urlsafe(25)[:33]
    emu.set_key(key)
    return key


async def test_a_key_file_written_in_place_is_taken_whole_never_half_written(
    tmp_path: Path, emu: EmulatorProcess, redis_url: str
) -> None:
    """The key file is rewritten in place, slowly: first half of the new key (as a writer caught mid-write leaves
    it), then the whole key. The half key is never used (refused as not a whole Google key: one log line, the
    running key mints meanwhile); the whole key is taken once it has read the same for a poll."""
    k1, k2 = google_key(emu), google_key(emu)
    path = tmp_path / "keys"
    path.write_text(k1 + "\n")
    metrics = Metrics()

    def reloads(outcome: str, count: int) -> Callable[[], Awaitable[bool]]:
        async def condition() -> bool:
            return sample(metrics, "livetoken_upstream_key_file_reloads_total", outcome=outcome) == count

        return condition

    with capture_logs() as logs:
        async with running_app(key_file_settings(tmp_path, emu, redis_url, path), metrics) as client:
            with path.open("w") as partial:  # the same file (same inode), rewritten in place
                partial.write(k2[:20])
                partial.flush()
                await until(reloads("refused", 1), "the half-written key has been refused")
                during = await client.post("/v1/tokens", json=TOKEN, headers=auth())
                partial.write(k2[20:] + "\n")
            await until(reloads("ok", 1), "the whole key has been taken")
            after = await client.post("/v1/tokens", json=TOKEN, headers=auth())
    assert (during.status_code, after.status_code) == (201, 201)
    assert keys_seen(emu) == [fingerprint(k1), fingerprint(k2)]
    refused = [e["error"] for e in logs if e["event"] == "api_key_file_refused"]
    assert refused == ["line 1 is not a whole Google API key (AIza and 35 letters, digits, - or _)"]
    assert k2[:20] not in json.dumps(logs)


async def test_keys_a_new_file_replaced_stay_as_fallbacks_until_a_new_key_mints(
    tmp_path: Path, emu: EmulatorProcess, redis_url: str
) -> None:
    """The new file holds a key Google refuses (revoked): the request still gets a token, from the key the file
    replaced, tried after it; once a good new key mints, the old one is no longer tried."""
    old, bad, good = google_key(emu), google_key(emu), google_key(emu)
    emu.set_key(bad, "revoked")
    volume = SecretVolume(tmp_path / "secret")
    volume.write(old)
    metrics = Metrics()

    async def took(count: int) -> bool:
        return sample(metrics, "livetoken_upstream_key_file_reloads_total", outcome="ok") == count

    async with running_app(key_file_settings(tmp_path, emu, redis_url, volume.path), metrics) as client:
        volume.write(bad)
        await until(lambda: took(1), "the file with the revoked key has been taken")
        rescued = await client.post("/v1/tokens", json=TOKEN, headers=auth())
        volume.write(bad, good)
        await until(lambda: took(2), "the file with a good key too has been taken")
        first_good = await client.post("/v1/tokens", json=TOKEN, headers=auth())
        emu.set_key(good, "revoked")
        only_new = await client.post("/v1/tokens", json=TOKEN, headers=auth())
    assert (rescued.status_code, first_good.status_code) == (201, 201)
    assert only_new.status_code == 502  # the new file's keys refused, and the old one dropped once `good` minted
    # bad refused, then old (the fallback) mints; good (bad cools down) mints; good revoked, bad still cooling: no
    # old any more.
    assert keys_seen(emu) == [
        fingerprint(bad),
        fingerprint(old),
        fingerprint(good),
        fingerprint(good),
        fingerprint(bad),
    ]
