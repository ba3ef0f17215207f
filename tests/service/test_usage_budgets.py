"""Budgets as callers meet them on real Redis: a caller without a tenant is outside every tenant budget, and
GET /v1/usage tells each profile's tokens left from every budget that counts it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.service import CONFIG, DEFAULT_LIMITS, auth, build_settings, make_jwt, running_app, service_env

TENANT_BUDGET = """
[[budgets]]
layer = "tenant"
units = 30
period = "1d"
"""

# Four budgets, three of them limited to profiles; a text token costs 10 units, voice and tools 15.
SEVERAL_BUDGETS = """
[[budgets]]
layer = "subject"
units = 200
period = "1d"

[[budgets]]
layer = "subject"
units = 50
period = "1d"
profiles = ["voice"]

[[budgets]]
layer = "subject"
units = 40
period = "1d"
profiles = ["text"]

[[budgets]]
layer = "tenant"
units = 60
period = "1d"
profiles = ["voice"]
"""


async def test_a_caller_without_a_tenant_is_not_charged_to_a_tenant_budget(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """A tenant budget of two voice tokens: three callers whose JWT names no tenant get a token each (they do not
    share one budget among all tenant-less callers), and their GET /v1/usage answers 200 with no budget and no
    count of tokens left; users of tenant acme still share theirs (two tokens, then budget-exhausted)."""
    config = tmp_path / "livetoken.toml"
    config.write_text(CONFIG.format(limits=DEFAULT_LIMITS) + TENANT_BUDGET)
    settings = build_settings(config, service_env(emulator, redis_url))
    loners = [make_jwt(sub=f"loner-{i}", org=None) for i in range(3)]
    async with running_app(settings) as client:
        alone = [await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(t)) for t in loners]
        usage = [await client.get("/v1/usage", headers=auth(t)) for t in loners]
        acme = [
            await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(sub=f"acme-{i}", org="acme"))
            for i in range(3)
        ]
    assert [r.status_code for r in alone] == [201, 201, 201]
    assert [r.status_code for r in usage] == [200, 200, 200]
    for answer in usage:
        body = answer.json()
        assert body["budgets"] == []
        assert {p["name"]: p["tokens_left"] for p in body["profiles"]} == {"voice": None, "text": None}
    assert [r.status_code for r in acme] == [201, 201, 429]
    assert acme[2].json()["type"] == "https://livetoken.dev/problems/budget-exhausted"


async def test_each_profiles_tokens_left_is_the_least_any_of_its_budgets_allows(
    tmp_path: Path, emulator: Any, redis_url: str
) -> None:
    """Budgets for all profiles (200), voice only (50), text only (40) and the tenant's voice (60); the caller spent
    one voice token (15), a teammate two (30). Left: 185, 35, 40, 15. Voice counts against three of them, the least
    of which (the tenant's 15) allows 1 token; text (cost 10) against two: 40 allows 4; tools against one: 185
    allows 12."""
    config = tmp_path / "livetoken.toml"
    text = CONFIG.format(limits=DEFAULT_LIMITS).replace("uses = 2\n", "uses = 2\ncost = 10\n", 1)
    config.write_text(text + SEVERAL_BUDGETS)
    settings = build_settings(config, service_env(emulator, redis_url))
    caller = make_jwt(sub="counter", org="acme", scopes="live:tools")
    async with running_app(settings) as client:
        spent = [await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(caller))]
        spent += [
            await client.post("/v1/tokens", json={"profile": "voice"}, headers=auth(sub="teammate", org="acme"))
            for _ in range(2)
        ]
        usage = await client.get("/v1/usage", headers=auth(caller))
    assert [r.status_code for r in spent] == [201, 201, 201]
    assert usage.status_code == 200
    body = usage.json()
    assert [(b["layer"], b["units"], b["remaining"], b["profiles"]) for b in body["budgets"]] == [
        ("subject", 200, 185, []),
        ("subject", 50, 35, ["voice"]),
        ("subject", 40, 40, ["text"]),
        ("tenant", 60, 15, ["voice"]),
    ]
    assert {p["name"]: (p["cost"], p["tokens_left"]) for p in body["profiles"]} == {
        "voice": (15, 1),
        "text": (10, 4),
        "tools": (15, 12),
    }
