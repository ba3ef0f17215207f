"""The SDK's private names are resolved at start-up: an SDK that renamed one fails there, naming the version,
and a bug in a mint attempt is not mistaken for a Google outage."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import _api_client, _common, _tokens_converters

from service.config import ProfileConfig, Secret, UpstreamConfig
from service.metrics import Metrics
from service.upstream import SdkIncompatibleError, TokenMinter, check_sdk
from service.upstream.sdk import SUPPORTED_SDK, sdk_version

PROFILES = {"voice": ProfileConfig(model="gemini-3.8-live")}


def _minter(emulator: Any, upstream: UpstreamConfig | None = None) -> TokenMinter:
    return TokenMinter(
        api_key=Secret(emulator.api_key),
        base_url=emulator.base_url,
        ca_file=emulator.ca_file,
        profiles=PROFILES,
        upstream=upstream or UpstreamConfig(),
        metrics=Metrics(),
    )


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        (_tokens_converters, "_CreateAuthTokenParameters_to_mldev"),
        (_common, "encode_unserializable_types"),
        (_api_client.BaseApiClient, "_build_request"),
    ],
)
def test_a_renamed_private_name_fails_start_up_naming_the_sdk(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str
) -> None:
    """As after an SDK upgrade that renamed it: the check raises one line with the version and the name."""
    monkeypatch.delattr(owner, name)
    with pytest.raises(SdkIncompatibleError) as info:
        check_sdk()
    message = str(info.value)
    assert message == (
        f"google-genai {sdk_version()} has no {getattr(owner, '__name__', '')}.{name}, which livetoken's minter "
        f"uses; install google-genai{SUPPORTED_SDK} (see pyproject.toml)"
    )


def test_the_installed_sdk_is_in_the_supported_range() -> None:
    """The version pyproject pins is the one the seam resolves (what CI installs from requirements.lock)."""
    check_sdk()
    major, minor, *_ = (int(p) for p in sdk_version().split("."))
    assert (major, minor) == (3, 6)


async def test_a_bug_in_an_attempt_is_not_retried_nor_counted_as_an_outage(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TypeError inside the send (as an SDK change would raise) reaches the caller as it is, after exactly one
    request, with the circuit still closed: not three attempts and a 503 that look like Google failing."""
    minter = _minter(emulator)
    calls = 0

    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        raise TypeError("unexpected keyword argument 'implicit_retry'")

    monkeypatch.setattr(minter._connections, "request", broken)
    try:
        with pytest.raises(TypeError):
            await minter.mint("voice", None)
    finally:
        await minter.aclose()
    assert calls == 1
    assert minter.circuit.state == "closed"
