"""Fixtures for the client's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.emulator.live_support import close_open_clients


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    """Every SDK client a test opened is closed after it."""
    yield
    await close_open_clients()
