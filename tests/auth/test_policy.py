"""Profile `require` rules: scopes and claim values the caller must hold."""

from __future__ import annotations

from typing import Any

import pytest

from service.auth import CallerIdentity, may_use
from service.config import ProfileConfig, RequireRule


def caller(scopes: set[str] = frozenset(), **claims: Any) -> CallerIdentity:  # type: ignore[assignment]
    """A verified caller with the given scopes and claims."""
    return CallerIdentity("iss", "alice", None, frozenset(scopes), claims)


def profile(require: RequireRule | None) -> ProfileConfig:
    """A profile with the rule."""
    return ProfileConfig(model="m", require=require)


@pytest.mark.parametrize(
    ("rule", "who", "allowed"),
    [
        (None, caller(), True),
        (RequireRule(scopes=["live:voice"]), caller({"live:voice", "x"}), True),
        (RequireRule(scopes=["live:voice"]), caller({"live"}), False),
        (RequireRule(scopes=["a", "b"]), caller({"a"}), False),
        (RequireRule(claims={"tier": "pro"}), caller(tier="pro"), True),
        (RequireRule(claims={"tier": "pro"}), caller(tier="free"), False),
        (RequireRule(claims={"tier": ["pro", "enterprise"]}), caller(tier="enterprise"), True),
        (RequireRule(claims={"roles": "support"}), caller(roles=["user", "support"]), True),
        (RequireRule(claims={"roles": "support"}), caller(roles=["user"]), False),
        (RequireRule(claims={"tier": "pro"}), caller(), False),
        (RequireRule(scopes=["s"], claims={"tier": "pro"}), caller({"s"}, tier="pro"), True),
        (RequireRule(scopes=["s"], claims={"tier": "pro"}), caller({"s"}, tier="basic"), False),
    ],
)
def test_require_rules(rule: RequireRule | None, who: CallerIdentity, allowed: bool) -> None:
    """All listed scopes, and one of the listed values for each claim (lists match by membership)."""
    assert may_use(profile(rule), who) is allowed


@pytest.mark.parametrize(
    ("have", "allowed"),
    [
        pytest.param({"tier": "pro"}, False, id="object"),
        pytest.param([{"tier": "pro"}], False, id="list-of-objects"),
        pytest.param([["pro"]], False, id="list-of-lists"),
        pytest.param([{"x": 1}, "pro"], True, id="objects-then-the-value"),
        pytest.param(True, False, id="boolean"),
        pytest.param([True, "42"], True, id="boolean-then-the-value"),
        pytest.param(1.0, False, id="float"),
        pytest.param(None, False, id="null"),
        pytest.param(42, True, id="integer-matches-its-digits"),
        pytest.param([7, 42], True, id="integer-in-a-list"),
    ],
)
def test_claims_of_any_json_shape_are_judged_without_error(have: Any, allowed: bool) -> None:
    """A verified token may carry any JSON in a claim a rule names: only strings, integers and booleans can match,
    and no shape (objects and lists are unhashable) makes the check raise."""
    rule = RequireRule(claims={"tier": ["pro", "42"]})
    assert may_use(profile(rule), caller(tier=have)) is allowed


def test_a_boolean_claim_matches_its_json_spelling() -> None:
    """`is_anonymous = "false"` admits a token whose is_anonymous is false and refuses one whose is true."""
    rule = RequireRule(claims={"is_anonymous": "false"})
    assert may_use(profile(rule), caller(is_anonymous=False)) is True
    assert may_use(profile(rule), caller(is_anonymous=True)) is False
    assert may_use(profile(rule), caller(is_anonymous="false")) is True
