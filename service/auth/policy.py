"""Authorization: may this verified caller use this profile?"""

from __future__ import annotations

from service.auth.identity import CallerIdentity
from service.config import ProfileConfig


def may_use(profile: ProfileConfig, caller: CallerIdentity) -> bool:
    """True when the caller holds every scope and claim value the profile's `require` rule names."""
    rule = profile.require
    if rule is None:
        return True
    if not set(rule.scopes) <= caller.scopes:
        return False
    for name, wanted in rule.claims.items():
        allowed = {wanted} if isinstance(wanted, str) else set(wanted)
        have = caller.claims.get(name)
        values = set(have) if isinstance(have, list) else {have}
        if not {str(v) for v in values if v is not None} & allowed:
            return False
    return True
