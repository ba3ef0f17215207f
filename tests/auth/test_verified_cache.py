"""A verified JWT is remembered briefly, but never past what its own checks allow."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from service.auth import JWTVerifier
from service.config import Duration, IssuerConfig, Secret
from service.errors import InvalidToken
from service.metrics import Metrics
from tests.auth.signing import AUD, HS_SECRET, Keys, sign

ISSUER = "https://hs.test/"


def _verifier(cache_size: int = 100, max_age: float | None = None) -> JWTVerifier:
    cfg = IssuerConfig(
        issuer=ISSUER,
        audiences=[AUD],
        algorithms=["HS256"],
        hs256_secret_env="HS",
        leeway=Duration(0),
        max_token_age=None if max_age is None else Duration(max_age),
    )
    return JWTVerifier([cfg], {ISSUER: Secret(HS_SECRET)}, httpx.AsyncClient(), Metrics(), cache_size=cache_size)


async def _wait_past(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.time()) + 0.05)


async def test_a_remembered_token_still_expires_at_its_exp(keys: Keys) -> None:
    """Accepted twice (the second time from memory), refused once exp has passed."""
    verifier = _verifier()
    exp = int(time.time()) + 1
    header = f"Bearer {sign(keys, 'hs', exp=exp)}"
    assert (await verifier.verify(header)).subject == "alice"
    assert (await verifier.verify(header)).subject == "alice"
    await _wait_past(exp)
    with pytest.raises(InvalidToken):
        await verifier.verify(header)


async def test_a_remembered_token_still_ages_out(keys: Keys) -> None:
    """With max_token_age, a token issued long enough ago is refused even though it was accepted before."""
    verifier = _verifier(max_age=2)
    iat = int(time.time()) - 1
    header = f"Bearer {sign(keys, 'hs', iat=iat)}"
    assert (await verifier.verify(header)).subject == "alice"
    await _wait_past(iat + 2)
    with pytest.raises(InvalidToken):
        await verifier.verify(header)


async def test_memory_is_bounded_and_forgotten_tokens_verify_again(keys: Keys) -> None:
    """More callers than the cache holds: every one is still verified correctly, and a token that differs from a
    remembered one by a single character is checked, not matched."""
    verifier = _verifier(cache_size=3)
    headers = [f"Bearer {sign(keys, 'hs', sub=f'user-{i}')}" for i in range(8)]
    for _ in range(2):
        for i, header in enumerate(headers):
            assert (await verifier.verify(header)).subject == f"user-{i}"
    assert len(verifier._verified) <= 3
    tampered = headers[-1][:-2] + ("AA" if not headers[-1].endswith("AA") else "BB")
    with pytest.raises(InvalidToken):
        await verifier.verify(tampered)


async def test_a_refused_token_is_refused_again_from_memory_with_its_reason(
    keys: Keys, monkeypatch: pytest.MonkeyPatch, signature_checks: list[str]
) -> None:
    """A forged signature is refused, and the same bytes again are refused without another check (the signature
    is not recomputed), counted under the same reason both times; forgetting takes a minute."""
    verifier = _verifier()
    good = sign(keys, "hs", sub="mallory")
    forged = f"Bearer {good[:-4]}AAAA"
    for _ in range(3):
        with pytest.raises(InvalidToken) as refused:
            await verifier.verify(forged)
        assert refused.value.internal_reason == "bad_signature"
    assert signature_checks == ["HS256"]
    assert 'livetoken_jwt_rejections_total{check="bad_signature"} 3.0' in verifier._metrics.render().decode()
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(InvalidToken):
        await verifier.verify(forged)
    assert signature_checks == ["HS256", "HS256"]  # checked afresh once the memory lapsed
    assert (await verifier.verify(f"Bearer {good}")).subject == "mallory"  # the real token is not tarred


async def test_a_token_refused_for_being_early_is_not_remembered(keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    """`nbf` 20 s ahead: refused now, accepted once the clock has passed it (time can change that verdict, so
    it is never remembered)."""
    verifier = _verifier()
    now = time.time()
    header = f"Bearer {sign(keys, 'hs', nbf=int(now) + 20, iat=int(now))}"
    with pytest.raises(InvalidToken) as refused:
        await verifier.verify(header)
    assert refused.value.internal_reason == "not_yet_valid"
    monkeypatch.setattr(time, "time", lambda: now + 21)
    assert (await verifier.verify(header)).subject == "alice"
