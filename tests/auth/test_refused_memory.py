"""The memory of refused JWTs is bounded: a flood of distinct bad tokens never holds more than the shipped 10k."""

from __future__ import annotations

import httpx
import jwt
import pytest

from service.auth import JWTVerifier
from service.auth.verifier import VERIFIED_CACHE_SIZE
from service.config import Duration, IssuerConfig, Secret
from service.errors import InvalidToken
from service.metrics import Metrics
from tests.auth.signing import AUD, HS_SECRET, claims

ISSUER = "https://hs.test/"
FLOOD = VERIFIED_CACHE_SIZE + 2_000


async def test_a_flood_of_distinct_forged_tokens_is_remembered_up_to_the_bound(signature_checks: list[str]) -> None:
    """12 000 distinct tokens with forged signatures, each refused: the verifier never remembers more than 10 000
    refusals (the oldest are dropped first), the newest is refused again from memory without a signature check,
    the first (forgotten) is checked afresh, and every refusal is counted under its reason."""
    cfg = IssuerConfig(issuer=ISSUER, audiences=[AUD], algorithms=["HS256"], hs256_secret_env="HS", leeway=Duration(0))
    metrics = Metrics()
    forger = "a-secret-that-is-not-the-issuers-0123456789"
    forged = [f"Bearer {jwt.encode(claims(ISSUER, sub=f'flood-{i}'), forger, algorithm='HS256')}" for i in range(FLOOD)]
    held = 0
    async with httpx.AsyncClient() as http:
        verifier = JWTVerifier([cfg], {ISSUER: Secret(HS_SECRET)}, http, metrics)
        for header in forged:
            with pytest.raises(InvalidToken):
                await verifier.verify(header)
            held = max(held, len(verifier._refused))
        assert held == VERIFIED_CACHE_SIZE
        assert len(signature_checks) == FLOOD
        with pytest.raises(InvalidToken) as newest:
            await verifier.verify(forged[-1])
        assert len(signature_checks) == FLOOD  # remembered: no signature check
        with pytest.raises(InvalidToken) as oldest:
            await verifier.verify(forged[0])
        assert len(signature_checks) == FLOOD + 1  # forgotten: checked again
    assert newest.value.internal_reason == oldest.value.internal_reason == "bad_signature"
    assert len(verifier._refused) == VERIFIED_CACHE_SIZE
    assert f'livetoken_jwt_rejections_total{{check="bad_signature"}} {FLOOD + 2}.0' in metrics.render().decode()
