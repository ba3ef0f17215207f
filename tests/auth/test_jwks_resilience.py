"""A JWKS with keys this service cannot use, or no usable key at all, never takes verification down.

Bad keys are skipped (counted by reason, logged once per refresh by kid), good keys kept; a refresh that yields
nothing usable is a failed refresh that keeps the last good set; start-up with a broken JWKS raises nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from jwt.algorithms import ECAlgorithm
from structlog.testing import capture_logs

from service.auth import JWTVerifier
from service.auth.jwk_set import SKIP_REASONS
from service.config import ConfigError, Duration, IssuerConfig
from service.errors import InvalidToken
from service.metrics import Metrics
from tests.auth.signing import AUD, Keys, claims, public_jwk, sign
from tests.support.jwks_server import JWKSServer

ES = "https://es.test/"
BROKEN_RSA = {"kty": "RSA", "kid": "x"}
UNKNOWN_CURVE = {"kty": "EC", "kid": "c", "crv": "P-999", "x": "AAAA", "y": "AAAA"}


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@asynccontextmanager
async def es_verifier(url: str, metrics: Metrics, **opts: Any) -> AsyncIterator[JWTVerifier]:
    """A started verifier with one issuer: ES256 keys from the JWKS at `url` (cooldown 0 unless given)."""
    source: dict[str, Any] = {"jwks_url": url}  # as the TOML loader would give it
    cfg = IssuerConfig(
        issuer=ES,
        audiences=[AUD],
        algorithms=["ES256", "RS256"],
        jwks_refresh_cooldown=Duration(opts.pop("cooldown", 0.0)),
        jwks_timeout=Duration(0.5),
        **source,
        **opts,
    )
    async with httpx.AsyncClient() as http:
        verifier = JWTVerifier([cfg], {}, http, metrics)
        await verifier.start()
        yield verifier


@pytest.fixture
def es_jwks(keys: Keys) -> Iterator[JWKSServer]:
    """A JWKS endpoint publishing the good ES256 key es-1."""
    server = JWKSServer()
    server.jwks = {"keys": [public_jwk(keys.ec.public_key(), "EC", "es-1", "ES256")]}
    yield server
    server.close()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param(BROKEN_RSA, "unusable", id="rsa-without-n-and-e"),
        pytest.param(UNKNOWN_CURVE, "unusable", id="ec-unknown-curve"),
        pytest.param(
            {"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB", "alg": ["RS256"]}, "algorithm", id="alg-list"
        ),
        pytest.param({"kty": "OKP", "kid": "o", "crv": "Ed25519", "x": "AAAA"}, "key_type", id="okp"),
        pytest.param({"kty": "RSA", "kid": "e", "use": "enc", "n": "AQAB", "e": "AQAB"}, "not_for_signing", id="enc"),
        pytest.param({"kty": "EC", "kid": "cert", "x5c": ["MIIB"]}, "unusable", id="x5c-only"),
    ],
)
async def test_one_bad_key_does_not_take_the_set_down(
    keys: Keys, es_jwks: JWKSServer, bad: dict[str, Any], reason: str
) -> None:
    """The good key next to a bad one verifies; the bad one is counted once under its reason; status stays ok."""
    es_jwks.jwks["keys"].append(bad)
    metrics = Metrics()
    async with es_verifier(es_jwks.url, metrics) as verifier:
        caller = await verifier.verify(f"Bearer {sign(keys, 'es')}")
        assert verifier.jwks_status() == "ok"
    assert caller.subject == "alice"
    assert _sample(metrics, "livetoken_jwks_keys_skipped_total", reason=reason) == 1
    assert _sample(metrics, "livetoken_jwks_refreshes_total", outcome="ok") == 1


async def test_rotation_loads_the_new_key_next_to_a_broken_one(keys: Keys, es_jwks: JWKSServer) -> None:
    """The IdP rotates to es-2 and also publishes a broken key: the unknown kid refetches and es-2 verifies."""
    async with es_verifier(es_jwks.url, Metrics()) as verifier:
        es_jwks.jwks = {"keys": [public_jwk(keys.ec_rotated.public_key(), "EC", "es-2", "ES256"), BROKEN_RSA]}
        rotated = jwt.encode(claims(ES), keys.ec_rotated, algorithm="ES256", headers={"kid": "es-2"})
        caller = await verifier.verify(f"Bearer {rotated}")
    assert caller.subject == "alice"


async def test_a_refresh_with_no_usable_key_fails_and_keeps_the_last_good_set(keys: Keys, es_jwks: JWKSServer) -> None:
    """Only broken keys on the next fetch: a failed refresh (metric and log), the old key keeps verifying, the
    unknown kid gets the generic 401, and the status says stale."""
    metrics = Metrics()
    async with es_verifier(es_jwks.url, metrics) as verifier:
        es_jwks.jwks = {"keys": [BROKEN_RSA, UNKNOWN_CURVE]}
        with capture_logs() as logs, pytest.raises(InvalidToken) as err:
            await verifier.verify(f"Bearer {sign(keys, 'es', headers={'kid': 'es-2'})}")
        assert err.value.internal_reason == "unknown_kid"
        assert (await verifier.verify(f"Bearer {sign(keys, 'es')}")).subject == "alice"
        assert verifier.jwks_status() == "stale"
    failed = [e for e in logs if e["event"] == "jwks_refresh_failed"]
    assert failed == [
        {
            "event": "jwks_refresh_failed",
            "log_level": "warning",
            "url": es_jwks.url,
            "reason": "no_usable_key",
            "cached_keys": 1,
            "status": "stale",
        }
    ]
    assert _sample(metrics, "livetoken_jwks_refreshes_total", outcome="error") == 1
    assert _sample(metrics, "livetoken_jwks_keys_skipped_total", reason="unusable") == 2


async def test_a_good_refresh_after_a_failed_one_is_ok_again(keys: Keys, es_jwks: JWKSServer) -> None:
    """stale is only while the last refresh failed: the next good one makes the status ok."""
    async with es_verifier(es_jwks.url, Metrics()) as verifier:
        good = es_jwks.jwks
        es_jwks.jwks = {"keys": [BROKEN_RSA]}
        with pytest.raises(InvalidToken):
            await verifier.verify(f"Bearer {sign(keys, 'es', headers={'kid': 'es-2'})}")
        assert verifier.jwks_status() == "stale"
        es_jwks.jwks = good
        with pytest.raises(InvalidToken):
            await verifier.verify(f"Bearer {sign(keys, 'es', headers={'kid': 'es-3'})}")
        assert verifier.jwks_status() == "ok"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(json.dumps({"keys": [BROKEN_RSA, UNKNOWN_CURVE]}).encode(), id="no-usable-key"),
        pytest.param(b'{"keys": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}", id="nested-100k"),
        pytest.param(b'{"keys": "none"}', id="not-a-jwks"),
    ],
)
async def test_start_up_with_a_broken_jwks_raises_nothing_and_says_unavailable(keys: Keys, body: bytes) -> None:
    """start() returns; one warning line says why; tokens get the generic 401; the status is unavailable."""
    server = JWKSServer()
    server.raw = body
    try:
        metrics = Metrics()
        with capture_logs() as logs:
            async with es_verifier(server.url, metrics, cooldown=30.0) as verifier:
                assert verifier.jwks_status() == "unavailable"
                with pytest.raises(InvalidToken) as err:
                    await verifier.verify(f"Bearer {sign(keys, 'es')}")
    finally:
        server.close()
    assert err.value.internal_reason == "unknown_kid"
    assert [e["event"] for e in logs if e["log_level"] in ("warning", "error")][-1] == "jwks_refresh_failed"
    assert sum(e["event"] == "jwks_refresh_failed" for e in logs) == 1
    assert _sample(metrics, "livetoken_jwks_refreshes_total", outcome="error") == 1


async def test_skipped_keys_are_logged_once_per_refresh_by_kid_without_key_material(
    keys: Keys, es_jwks: JWKSServer
) -> None:
    """One line per refresh names each skipped key's kid and reason; no key material and no exception text (which
    quotes the whole JWK) reaches any log line or metric label."""
    private = {**ECAlgorithm.to_jwk(keys.ec_rotated, as_dict=True), "kid": "leaked"}
    broken = {**UNKNOWN_CURVE, "x": "c2VjcmV0LWNvb3JkaW5hdGU"}
    es_jwks.jwks["keys"] += [private, broken, {"kty": "EC", "kid": "enc", "use": "enc"}]
    metrics = Metrics()
    with capture_logs() as logs:
        async with es_verifier(es_jwks.url, metrics):
            pass
    skipped = [e for e in logs if e["event"] == "jwks_keys_skipped"]
    assert skipped == [
        {
            "event": "jwks_keys_skipped",
            "log_level": "warning",
            "url": es_jwks.url,
            "count": 3,
            "keys": [
                {"kid": "leaked", "reason": "private_key"},
                {"kid": "c", "reason": "unusable"},
                {"kid": "enc", "reason": "not_for_signing"},
            ],
            "usable": 1,
        }
    ]
    text = repr(logs) + metrics.render().decode()
    for material in (private["d"], private["x"], private["y"], broken["x"]):
        assert material not in text
    assert "leaked" not in metrics.render().decode()
    exported = {
        s.labels["reason"]
        for family in metrics.registry.collect()
        if family.name == "livetoken_jwks_keys_skipped"
        for s in family.samples
        if "reason" in s.labels
    }
    assert exported <= set(SKIP_REASONS)


async def test_routine_skips_are_logged_at_info(keys: Keys, es_jwks: JWKSServer) -> None:
    """An encryption key or another key type is normal in an IdP's JWKS: logged at info, not as a warning."""
    es_jwks.jwks["keys"].append({"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AAAA"})
    with capture_logs() as logs:
        async with es_verifier(es_jwks.url, Metrics()):
            pass
    assert [e["log_level"] for e in logs if e["event"] == "jwks_keys_skipped"] == ["info"]


async def test_a_kid_of_the_wrong_key_type_is_refused(keys: Keys, es_jwks: JWKSServer) -> None:
    """An issuer allowing RS256 and ES256: an RS256 token naming the EC key's kid is refused before any crypto."""
    async with es_verifier(es_jwks.url, Metrics()) as verifier:
        token = jwt.encode(claims(ES), keys.rsa, algorithm="RS256", headers={"kid": "es-1"})
        with pytest.raises(InvalidToken) as err:
            await verifier.verify(f"Bearer {token}")
    assert err.value.internal_reason == "algorithm"


@pytest.mark.parametrize(
    ("content", "issuer_cfg"),
    [
        pytest.param(b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", {}, id="garbage-pem"),
        pytest.param(None, {}, id="file-gone"),
        pytest.param(b"", {"hs256_secret_env": "HS", "algorithms": ["HS256"]}, id="hs-secret-not-given"),
    ],
)
def test_a_key_source_gone_bad_since_load_is_a_config_error(
    tmp_path: Path, content: bytes | None, issuer_cfg: dict[str, Any]
) -> None:
    """A PEM file replaced or removed after the settings were validated, or a verifier wired without its secret:
    one ConfigError naming the issuer, never a cryptography traceback."""
    pem = tmp_path / "rs.pem"
    if content is not None:
        pem.write_bytes(content)
    fields: dict[str, Any] = issuer_cfg or {"algorithms": ["RS256"], "public_key_file": str(pem)}
    cfg = IssuerConfig(issuer="https://rs.test/", audiences=[AUD], **fields)
    with pytest.raises(ConfigError) as err:
        JWTVerifier([cfg], {}, httpx.AsyncClient(), Metrics())
    assert str(err.value).startswith("issuer 'https://rs.test/': ")
