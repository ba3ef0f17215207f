"""Authorization: may this verified caller use this profile?"""

from __future__ import annotations

from service.auth.identity import CallerIdentity
from service.config import ProfileConfig, RequireRule


def may_use(profile: ProfileConfig, caller: CallerIdentity) -> bool:
    """True when the caller holds every scope and claim value the profile's `require` rule names."""
    return profile.require is None or satisfies(profile.require, caller)


def satisfies(rule: RequireRule, caller: CallerIdentity) -> bool:
    """True when the caller holds every scope and claim value `rule` names."""
    if not set(rule.scopes) <= caller.scopes:
        return False
    for name, wanted in rule.claims.items():
        allowed = {wanted} if isinstance(wanted, str) else set(wanted)
        have = caller.claims.get(name)
        values = have if isinstance(have, list) else [have]
        # Only strings and integers can match a configured value: an object, list, float or boolean never does
        # (and is never hashed, so no claim shape can make this raise).
        if not any(_claim_text(value) in allowed for value in values):
            return False
    return True


def _claim_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
