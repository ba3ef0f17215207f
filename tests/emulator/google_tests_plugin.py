"""A pytest plugin for running google-genai's own API-mode Live tests against the emulator.

Google's `client` fixture builds its API client from the `http_options` fixture (api_version v1beta) and otherwise
talks to generativelanguage.googleapis.com. This plugin only gives those options the emulator's base URL (from
LIVETOKEN_GOOGLE_TESTS_BASE_URL): the tests, their client and the SDK run unchanged, as a plain client pointed at
another base URL. The API key comes from GOOGLE_API_KEY and TLS trust from SSL_CERT_FILE, as for any SDK user.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """After Google's `http_options` fixture has run, point its options at the emulator."""
    result = yield
    if fixturedef.argname == "http_options" and result is not None:
        result.base_url = os.environ["LIVETOKEN_GOOGLE_TESTS_BASE_URL"]
    return result
