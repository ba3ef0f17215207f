"""Shared fixtures: a private redis-server for the whole session, flushed per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.support.emulator import EmulatorProcess
from tests.support.redis_proc import RedisProcess


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    """One real redis-server for the test session, on a free port."""
    server = RedisProcess()
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    """URL of the session's redis-server, emptied before each test."""
    if redis_server.proc is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """One real emulator process for the session (reply audio unpaced so tests stay fast)."""
    proc = EmulatorProcess(tmp_path_factory.mktemp("emulator"), "--speed", "0")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(autouse=True)
def _emulator_faults_cleared(request: pytest.FixtureRequest) -> Iterator[None]:
    """No test inherits another's injected faults."""
    yield
    if "emulator" in request.fixturenames:
        request.getfixturevalue("emulator").clear_faults()
