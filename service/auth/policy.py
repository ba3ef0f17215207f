"""Authorization: may this verified caller use this profile?"""

from __future__ import annotations

from service.auth.claims import holds
from service.auth.identity import CallerIdentity
from service.config import ProfileConfig, RequireRule


def may_use(profile: ProfileConfig, caller: CallerIdentity) -> bool:
    """True when the caller holds every scope and claim value the profile's `require` rule names."""
    return profile.require is None or satisfies(profile.require, caller)


def satisfies(rule: RequireRule, caller: CallerIdentity) -> bool:
    """True when the caller holds every scope and claim value `rule` names (claims by name or dotted path)."""
    if not set(rule.scopes) <= caller.scopes:
        return False
    return all(holds(caller.claims, name, wanted) for name, wanted in rule.claims.items())
