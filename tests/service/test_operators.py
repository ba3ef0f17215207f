"""Operators' controls on real Redis: spend budgets (checked with the rate limit in one round trip, refunded on a
failed mint, exact across replicas), GET /v1/usage, and blocks set by the CLI or the admin endpoint."""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import jwt
import pytest
import redis
from structlog.testing import capture_logs

from service.auth import CallerIdentity
from service.issuing import flow
from tests.support.processes import livetoken_exe, serving
from tests.support.service import (
    ISSUER,
    auth,
    build_settings,
    make_jwt,
    running_app,
    service_env,
    write_config,
)
from tests.support.waiting import until

VOICE_BUDGET = """
[[budgets]]
layer = "subject"
units = 30
period = "1d"
profiles = ["voice"]
"""


@pytest.fixture
def settings(tmp_path: Path, emulator: Any, redis_url: str) -> Any:
    return build_settings(write_config(tmp_path, extra=VOICE_BUDGET), service_env(emulator, redis_url))


async def test_a_budget_of_two_voice_sessions_refuses_the_third(settings: Any, emulator: Any) -> None:
    """30 units a day, a voice token costs 15 (its session minutes): two tokens, then 429 budget-exhausted with
    Retry-After until 15 units have refilled (12 h) and the budget in the RateLimit headers; text tokens, which
    the budget does not count, still go out; Google saw two voice mints only."""
    token = make_jwt(sub="spender")
    before = emulator.mint_count()
    async with running_app(settings) as client:
        issued = [await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token)) for _ in range(2)]
        refused = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))
        text = await client.post("/v1/tokens", json={"profile": "text"}, headers=auth(token))
        metrics = (await client.get("/metrics")).text
    assert [r.status_code for r in issued] == [201, 201]
    assert '"budget-subject-86400s";q=30;w=86400' in issued[0].headers["ratelimit-policy"]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json() == {
        "status": 429,
        "type": "https://livetoken.dev/problems/budget-exhausted",
        "title": "Budget exhausted",
        "detail": "The budget for this caller is spent until it resets; see Retry-After.",
        "request_id": refused.headers["x-request-id"],
    }
    assert 43_150 <= int(refused.headers["retry-after"]) <= 43_200
    assert '"budget-subject-86400s";q=30;w=86400' in refused.headers["ratelimit-policy"]
    assert text.status_code == 201
    assert emulator.mint_count() - before == 3  # two voice, one text
    assert 'livetoken_budget_units_spent_total{layer="subject",profile="voice"} 30.0' in metrics
    assert 'livetoken_budget_exhausted_total{layer="subject",profile="voice"} 1.0' in metrics
    assert 'livetoken_rejections_total{reason="budget-exhausted"} 1.0' in metrics


async def test_a_failed_mint_gives_the_units_back(settings: Any, emulator: Any) -> None:
    """Google refuses the first mint: its 15 units are refunded, so two tokens still fit in the 30."""
    token = make_jwt(sub="unlucky-spender")
    async with running_app(settings) as client:
        emulator.fail_next(400)
        failed = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))
        issued = [await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token)) for _ in range(2)]
        refused = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))
    assert failed.status_code == 502
    assert [r.status_code for r in issued] == [201, 201]
    assert refused.status_code == 429


async def test_a_calendar_budget_resets_at_local_midnight(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """`reset_time_zone = "Asia/Tokyo"`: the refusal's Retry-After runs to the next midnight in Tokyo."""
    extra = VOICE_BUDGET.replace('profiles = ["voice"]', 'profiles = ["voice"]\nreset_time_zone = "Asia/Tokyo"')
    settings = build_settings(write_config(tmp_path, extra=extra), service_env(emulator, redis_url))
    token = make_jwt(sub="tokyo")
    async with running_app(settings) as client:
        for _ in range(2):
            assert (await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))).status_code == 201
        refused = await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))
    now = datetime.now(ZoneInfo("Asia/Tokyo"))
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), ZoneInfo("Asia/Tokyo"))
    assert refused.status_code == 429
    assert refused.json()["type"].endswith("/budget-exhausted")
    assert abs(int(refused.headers["retry-after"]) - (midnight - now).total_seconds()) <= 3


async def test_a_callers_kept_checks_move_to_the_next_calendar_window(
    tmp_path: Path, emulator: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issuer keeps a caller's checks between requests, but a calendar budget's only until its window ends:
    the first request after Tokyo midnight is charged to the new day's bucket, not yesterday's."""
    extra = VOICE_BUDGET.replace('profiles = ["voice"]', 'profiles = ["voice"]\nreset_time_zone = "Asia/Tokyo"')
    settings = build_settings(write_config(tmp_path, extra=extra), service_env(emulator, redis_url))
    async with running_app(settings) as client:
        issuer = client.app.state.runtime.current.issuer
    caller = CallerIdentity(ISSUER, "tokyo-plan", None, frozenset(), {})
    voice = settings.profiles["voice"]
    checks, blocks = issuer._plan(caller, "voice", voice)
    again = issuer._plan(caller, "voice", voice)
    assert again[0] is checks  # kept, not rebuilt
    assert again[1] is blocks
    today = next(c for c in checks if c.is_budget)
    assert today.window_end is not None
    monkeypatch.setattr(flow, "time", SimpleNamespace(time=lambda: today.window_end + 1))
    tomorrow = next(c for c in issuer._plan(caller, "voice", voice)[0] if c.is_budget)
    assert tomorrow.key != today.key
    assert tomorrow.window_end == today.window_end + 86_400  # Tokyo keeps no daylight saving time


async def test_a_tenant_budget_is_shared_and_exact_across_replicas(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """A tenant budget of 5 voice tokens, 40 requests from 40 users of that tenant at once through two instances
    sharing Redis: exactly 5 tokens, 35 budget-exhausted."""
    extra = '\n[[budgets]]\nlayer = "tenant"\nunits = 75\nperiod = "30d"\n'
    settings = build_settings(write_config(tmp_path, extra=extra), service_env(emulator, redis_url))
    async with running_app(settings) as a, running_app(settings) as b:
        answers = await asyncio.gather(
            *(
                (a if i % 2 else b).post("/v1/tokens", json={"profile": "voice"}, headers=auth(sub=f"acme-{i}"))
                for i in range(40)
            )
        )
    kinds = [str(r.status_code) if r.status_code == 201 else r.json()["type"].rsplit("/", 1)[1] for r in answers]
    assert kinds.count("201") == 5
    assert kinds.count("budget-exhausted") == 35


def test_the_budget_check_is_the_rate_limits_one_round_trip(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """With a budget configured (and blocks looked up), an issued token is exactly one command from the service
    to Redis, the limiter's EVALSHA: Redis's MONITOR sees nothing else but what that script runs inside."""
    config = write_config(tmp_path, extra=VOICE_BUDGET)
    with serving(config, service_env(emulator, redis_url)) as (_proc, url):
        httpx.post(url + "/v1/tokens", json={"profile": "voice"}, headers=auth(sub="warm"), timeout=10)
        seen: list[tuple[str, str]] = []
        admin = redis.Redis.from_url(redis_url)
        marker = redis.Redis.from_url(redis_url)
        marker.ping()  # connected before MONITOR starts: its handshake is not in what we count
        with admin.monitor() as monitor:  # type: ignore[no-untyped-call]  # redis-py leaves monitor() untyped
            issued = httpx.post(url + "/v1/tokens", json={"profile": "voice"}, headers=auth(sub="one"), timeout=10)
            marker.echo("monitor-marker")  # the last line MONITOR will show for this request
            for event in monitor.listen():
                command = str(event["command"])
                if "monitor-marker" in command:
                    break
                seen.append((str(event.get("client_type", "")), command.split(maxsplit=1)[0]))
        admin.close()
        marker.close()
    assert issued.status_code == 201
    assert [command for kind, command in seen if kind != "lua"] == ["EVALSHA"], seen


async def test_usage_tells_the_caller_what_is_left(settings: Any) -> None:
    """GET /v1/usage after one voice token: the budget has 15 of 30 units left, so 1 more voice token; text is not
    counted by any budget; the subject's rate limit shows one request spent. Nothing is charged by asking."""
    token = make_jwt(sub="asker")
    async with running_app(settings) as client:
        assert (await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(token))).status_code == 201
        first = await client.get("/v1/usage", headers=auth(token))
        second = await client.get("/v1/usage", headers=auth(token))
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-store"
    body = first.json()
    assert [(b["name"], b["units"], b["remaining"], b["calendar"], b["profiles"]) for b in body["budgets"]] == [
        ("budget-subject-86400s", 30, 15, False, ["voice"])
    ]
    assert 43_000 < body["budgets"][0]["reset_seconds"] <= 43_200
    assert {p["name"]: (p["cost"], p["tokens_left"]) for p in body["profiles"]} == {
        "voice": (15, 1),
        "text": (15, None),  # an audio session shown as text: 15 minutes, 15 units
    }
    assert [(limit["name"], limit["limit"], limit["remaining"]) for limit in body["limits"]] == [
        ("subject-60s", 1000, 999)
    ]
    assert second.json()["budgets"][0]["remaining"] == 15  # asking spent nothing


def _cli(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [livetoken_exe(), *args, "--config", str(config)], env=env, capture_output=True, text=True, check=False
    )


async def test_a_block_from_the_cli_is_honoured_on_the_next_request(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """`livetoken block --subject mallory` (a real subprocess on the same Redis): mallory's next request is 403
    caller-blocked while bob's is issued; `livetoken blocks` lists it; `livetoken unblock` lifts it; a tenant
    block refuses every user of the tenant; a block `--for 4s` ends by itself."""
    config = write_config(tmp_path)
    env = {**service_env(emulator, redis_url), "PATH": "/usr/bin:/bin"}
    settings = build_settings(config, service_env(emulator, redis_url))
    async with running_app(settings) as client:

        async def status(sub: str, org: str = "acme") -> int:
            return (
                await client.post("/v1/tokens", json={"profile": "text"}, headers=auth(sub=sub, org=org))
            ).status_code

        blocked = _cli(config, env, "block", "--subject", "mallory", "--for", "1h", "--reason", "abuse report 42")
        assert blocked.returncode == 0, blocked.stderr
        assert blocked.stdout.startswith(f"blocked subject mallory (issuer {ISSUER}) until ")
        refused = await client.post("/v1/tokens", json={"profile": "text"}, headers=auth(sub="mallory"))
        assert refused.status_code == 403
        assert refused.json()["type"] == "https://livetoken.dev/problems/caller-blocked"
        assert "abuse" not in refused.text
        assert await status("bob") == 201
        listed = _cli(config, env, "blocks")
        assert listed.returncode == 0
        assert "subject mallory" in listed.stdout
        assert "abuse report 42" in listed.stdout
        assert _cli(config, env, "unblock", "--subject", "mallory").stdout == "unblocked subject mallory\n"
        assert await status("mallory") == 201
        assert _cli(config, env, "block", "--tenant", "globex", "--for", "4s").returncode == 0
        assert await status("g1", org="globex") == 403
        assert await status("g2", org="globex") == 403
        assert await status("a1", org="acme") == 201

        async def block_over() -> bool:
            return await status("g3", org="globex") == 201

        await until(block_over, "the 4 s tenant block expires by itself", within=10)
    audit = [line for line in blocked.stderr.splitlines() if "caller_blocked" in line]
    assert len(audit) == 1
    assert '"who":"mallory"' in audit[0]
    assert '"reason":"abuse report 42"' in audit[0]


async def test_the_admin_endpoint_blocks_for_operators_only(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """`[admin] require = { scopes = ["livetoken:admin"] }`: a caller without the scope gets 403 admin-forbidden;
    an operator blocks mallory (201 with the record), lists the block, lifts it (204), and each change is an audit
    line; without `[admin]` the endpoint is not there (404)."""
    extra = '\n[admin]\nrequire = { scopes = ["livetoken:admin"] }\n'
    settings = build_settings(write_config(tmp_path, extra=extra), service_env(emulator, redis_url))
    operator = auth(sub="ops", scopes="livetoken:admin")
    async with running_app(settings) as client:
        forbidden = await client.post("/v1/admin/blocks", json={"subject": "mallory"}, headers=auth(sub="eve"))
        with capture_logs() as logs:
            made = await client.post(
                "/v1/admin/blocks", json={"subject": "mallory", "duration": "2h", "reason": "spam"}, headers=operator
            )
            refused = await client.post("/v1/tokens", json={"profile": "text"}, headers=auth(sub="mallory"))
            listed = await client.get("/v1/admin/blocks", headers=operator)
            lifted = await client.delete("/v1/admin/blocks", params={"subject": "mallory"}, headers=operator)
            again = await client.delete("/v1/admin/blocks", params={"subject": "mallory"}, headers=operator)
            issued = await client.post("/v1/tokens", json={"profile": "text"}, headers=auth(sub="mallory"))
    assert forbidden.status_code == 403
    assert forbidden.json()["type"] == "https://livetoken.dev/problems/admin-forbidden"
    assert made.status_code == 201
    record = made.json()
    assert (record["layer"], record["who"], record["issuer"], record["reason"], record["by"]) == (
        "subject",
        "mallory",
        ISSUER,
        "spam",
        "admin:ops",
    )
    assert 7190 < record["expires_at"] - time.time() <= 7200
    assert refused.status_code == 403
    assert [b["who"] for b in listed.json()["blocks"]] == ["mallory"]
    assert (lifted.status_code, again.status_code, issued.status_code) == (204, 404, 201)
    events = [(e["event"], e.get("who"), e.get("by")) for e in logs if e["event"].startswith("caller_")]
    assert events == [
        ("caller_blocked", "mallory", "admin:ops"),
        ("caller_unblocked", "mallory", "admin:ops"),
        ("caller_unblocked", "mallory", "admin:ops"),
    ]
    plain = build_settings(write_config(tmp_path), service_env(emulator, redis_url))
    async with running_app(plain) as client:
        missing = await client.get("/v1/admin/blocks", headers=operator)
    assert missing.status_code == 404


async def test_the_admin_endpoint_answers_503_when_redis_is_down(tmp_path: Path, emulator: Any) -> None:
    """Redis stopped: listing, blocking and unblocking answer the limiter's fast 503 with Retry-After, never a 500."""
    from tests.support.redis_proc import RedisProcess

    redis_proc = RedisProcess()
    redis_proc.start()
    extra = '\n[admin]\nrequire = { scopes = ["livetoken:admin"] }\n'
    settings = build_settings(write_config(tmp_path, extra=extra), service_env(emulator, redis_proc.url))
    operator = auth(sub="ops", scopes="livetoken:admin")
    try:
        async with running_app(settings) as client:
            redis_proc.stop()
            answers = [
                await client.get("/v1/admin/blocks", headers=operator),
                await client.post("/v1/admin/blocks", json={"subject": "x"}, headers=operator),
                await client.delete("/v1/admin/blocks", params={"subject": "x"}, headers=operator),
            ]
    finally:
        redis_proc.close()
    for answer in answers:
        assert answer.status_code == 503
        assert answer.json()["type"] == "https://livetoken.dev/problems/rate-limiter-unavailable"
        assert answer.headers["retry-after"] == "1"


BACKEND = "https://backend.test/"
BACKEND_SECRET = "backend-issuer-secret-that-is-long-enough-0123456789"
BACKEND_ISSUER = f"""
[[issuers]]
issuer = "{BACKEND}"
audiences = ["livetoken"]
algorithms = ["HS256"]
hs256_secret_env = "BACKEND_SECRET"
"""


async def test_admin_issuers_are_enforced(tmp_path: Path, emulator: Any, redis_url: str) -> None:
    """`[admin] issuers = [backend]`: an operator JWT with the admin scope from the other trusted issuer is 403
    admin-forbidden and blocks nobody; the same claims from the backend issuer block."""
    extra = f"""{BACKEND_ISSUER}
[admin]
require = {{ scopes = ["livetoken:admin"] }}
issuers = ["{BACKEND}"]
"""
    env = service_env(emulator, redis_url, BACKEND_SECRET=BACKEND_SECRET)
    settings = build_settings(write_config(tmp_path, extra=extra), env)
    now = int(time.time())
    claims = {"aud": "livetoken", "sub": "ops", "iat": now, "exp": now + 300, "scope": "livetoken:admin"}
    backend_operator = jwt.encode({**claims, "iss": BACKEND}, BACKEND_SECRET, algorithm="HS256")
    block = {"subject": "mallory", "issuer": ISSUER, "duration": "1h"}
    async with running_app(settings) as client:
        other = await client.post("/v1/admin/blocks", json=block, headers=auth(sub="ops", scopes="livetoken:admin"))
        listed = await client.get("/v1/admin/blocks", headers=auth(backend_operator))
        made = await client.post("/v1/admin/blocks", json=block, headers=auth(backend_operator))
    assert other.status_code == 403
    assert other.json()["type"] == "https://livetoken.dev/problems/admin-forbidden"
    assert listed.json()["blocks"] == []
    assert made.status_code == 201


async def test_a_reload_that_removes_or_changes_an_issuer_stops_its_tokens(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """A configuration reloaded without the backend issuer refuses the backend's tokens (401) from the next
    request; reloaded with the test issuer's secret changed, tokens signed with the old secret are refused too,
    and ones signed with the new secret are accepted."""
    env = service_env(emulator, redis_url, BACKEND_SECRET=BACKEND_SECRET)
    both = build_settings(write_config(tmp_path, extra=BACKEND_ISSUER), env)
    now = int(time.time())
    claims = {"aud": "livetoken", "sub": "pat", "iat": now, "exp": now + 300}
    backend_token = jwt.encode({**claims, "iss": BACKEND}, BACKEND_SECRET, algorithm="HS256")
    new_secret = "a-new-secret-for-the-test-issuer-0123456789-abcdef"
    rotated_token = jwt.encode({**claims, "iss": ISSUER}, new_secret, algorithm="HS256")
    body = {"profile": "voice"}
    async with running_app(both) as client:
        runtime = client.app.state.runtime
        before = await client.post("/v1/tokens", json=body, headers=auth(backend_token))
        await runtime.reconfigure(build_settings(write_config(tmp_path), env))
        removed = await client.post("/v1/tokens", json=body, headers=auth(backend_token))
        still = await client.post("/v1/tokens", json=body, headers=auth(sub="kept"))
        await runtime.reconfigure(build_settings(write_config(tmp_path), {**env, "TEST_ISSUER_SECRET": new_secret}))
        old_secret = await client.post("/v1/tokens", json=body, headers=auth(sub="old-secret"))
        new = await client.post("/v1/tokens", json=body, headers=auth(rotated_token))
    assert (before.status_code, removed.status_code, still.status_code) == (201, 401, 201)
    assert (old_secret.status_code, new.status_code) == (401, 201)
