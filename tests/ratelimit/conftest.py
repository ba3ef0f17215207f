"""Fixtures for the rate-limiter tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_proc import RedisProcess


@pytest.fixture
def redis_proc() -> Iterator[RedisProcess]:
    """A redis-server of this test's own, which it may stop, restart or freeze."""
    proc = RedisProcess()
    proc.start()
    yield proc
    proc.close()
