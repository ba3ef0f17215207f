"""The limiter runs unchanged on a real three-node Redis Cluster: keys land by hash tag, limits stay exact."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from service.config import Duration, LimitRule, LimitsConfig
from service.metrics import Metrics
from service.ratelimit import RedisRateLimiter, checks_for
from tests.support.redis_proc import RedisProcess, free_cluster_port
from tests.support.service import auth, build_settings, make_jwt, running_app, service_env, write_config

SLOTS = 16384


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[RedisProcess]]:
    """Three `redis-server --cluster-enabled yes` nodes, slots split evenly, joined with CLUSTER MEET."""
    nodes = [
        RedisProcess(free_cluster_port(), extra_args=("--cluster-enabled", "yes", "--cluster-node-timeout", "2000"))
        for _ in range(3)
    ]
    for i, node in enumerate(nodes):
        node.extra_args += ("--cluster-config-file", str(Path(node.dir) / f"nodes-{i}.conf"))
        node.start()
    clients = [redis.Redis(port=n.port) for n in nodes]
    bounds = [0, SLOTS // 3, 2 * SLOTS // 3, SLOTS]
    for i, client in enumerate(clients):
        client.execute_command("CLUSTER ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)  # type: ignore[no-untyped-call]
    for client in clients[1:]:
        client.execute_command("CLUSTER MEET", "127.0.0.1", nodes[0].port)  # type: ignore[no-untyped-call]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all(c.execute_command("CLUSTER INFO").get("cluster_state") == "ok" for c in clients):  # type: ignore[no-untyped-call]
            break
        time.sleep(0.1)
    else:
        raise RuntimeError("cluster did not converge")
    for c in clients:
        c.close()
    yield nodes
    for node in nodes:
        node.close()


def test_keys_land_by_hash_tag_on_the_owning_node(cluster: list[RedisProcess]) -> None:
    """One subject's rules share a slot (one script per node); subject, tenant and global spread out."""
    limits = LimitsConfig(
        subject=[LimitRule(rate=5), LimitRule(rate=50, period=Duration(3600))],
        tenant=[LimitRule(rate=9)],
        global_=[LimitRule(rate=99)],
    )
    checks = checks_for(limits, "voice", [LimitRule(rate=2)], "issuer\x1falice", "acme")
    probe = redis.RedisCluster(host="127.0.0.1", port=cluster[0].port)
    slots = {c.key: probe.keyslot("livetoken:gcra:" + c.key) for c in checks}  # type: ignore[no-untyped-call]
    subject_slots = {slots[c.key] for c in checks if c.layer in ("subject", "profile")}
    assert len(subject_slots) == 1
    assert len(set(slots.values())) == 3  # subject, tenant and global tags land in their own slots

    async def run() -> None:
        lim = RedisRateLimiter.from_url(
            cluster[0].url, timeout=2.0, prefix="livetoken", metrics=Metrics(), cluster=True
        )
        assert (await lim.acquire(checks)).allowed
        await lim.aclose()

    asyncio.run(run())
    for c in checks:
        key = "livetoken:gcra:" + c.key
        assert probe.exists(key)
        owner = probe.get_node_from_key(key)  # type: ignore[no-untyped-call]
        direct = redis.Redis(host="127.0.0.1", port=owner.port)
        assert direct.exists(key)
        assert direct.pttl(key) > 0
        direct.close()
    probe.close()


def test_two_limiters_on_the_cluster_admit_exactly_the_limit(cluster: list[RedisProcess]) -> None:
    """200 concurrent checks through two cluster clients, subject limit 10 (plus global): exactly 10 pass."""
    limits = LimitsConfig(subject=[LimitRule(rate=10, period=3600, burst=10)], global_=[LimitRule(rate=100000)])  # type: ignore[arg-type]
    checks = checks_for(limits, "voice", [], "issuer\x1fhammer", None)

    async def run() -> int:
        a = RedisRateLimiter.from_url(cluster[1].url, timeout=3.0, prefix="exact", metrics=Metrics(), cluster=True)
        b = RedisRateLimiter.from_url(cluster[2].url, timeout=3.0, prefix="exact", metrics=Metrics(), cluster=True)
        results = await asyncio.gather(*((a if i % 2 else b).acquire(checks) for i in range(200)))
        await a.aclose()
        await b.aclose()
        return sum(d.allowed for d in results)

    assert asyncio.run(run()) == 10


async def test_two_service_instances_share_the_cluster(
    cluster: list[RedisProcess], tmp_path: Path, emulator: Any
) -> None:
    """Two app instances configured with redis_cluster = true admit exactly the subject's limit of 5."""
    config = write_config(tmp_path, 'subject = [{ rate = 5, period = "1h", burst = 5 }]\nredis_cluster = true')
    settings = build_settings(config, service_env(emulator, cluster[0].url))
    token = make_jwt(sub="cluster-user")
    async with running_app(settings) as a, running_app(settings) as b:
        results = await asyncio.gather(
            *((a if i % 2 else b).post("/v1/tokens", json={"profile": "text"}, headers=auth(token)) for i in range(40))
        )
        ready = (await a.get("/readyz")).json()
    statuses = [r.status_code for r in results]
    assert statuses.count(201) == 5
    assert statuses.count(429) == 35
    assert ready["rate_limiter"] == "ok"
