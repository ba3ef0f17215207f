"""What a verified JWT's header and claims must look like: RFC 7519 as PyJWT checks it, stricter on types.

Every member is checked for its JSON type before it is compared, hashed or converted: a list where a string
belongs, a boolean where a number belongs, a number that is not finite, are refusals like any other.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import Any

from service.auth.compact import Rejected
from service.auth.identity import CallerIdentity
from service.config import IssuerConfig

# A JWT that verified is remembered for at most this long (and never past its exp or max age): a caller
# retrying, or flooding, with the same token costs a dict lookup instead of a parse and a signature check.
# It is also how long a JWKS key removed by its issuer keeps admitting tokens it signed before.
VERIFIED_CACHE_SECONDS = 60.0
MAX_CLAIM_CHARS = 256
MAX_KID_CHARS = 256
_ACCEPTED_TYP = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


_MISSING = object()


def claim_at(claims: Mapping[str, Any], name: str) -> Any:
    """The claim `name`, or None. A name with dots that is not itself a claim is a path into nested objects:
    `realm_access.roles` is `claims["realm_access"]["roles"]` (a literal claim wins: Auth0's namespaced claims
    are URLs full of dots)."""
    value = claims.get(name, _MISSING)
    if value is not _MISSING:
        return value
    if "." not in name:
        return None
    found: Any = claims
    for part in name.split("."):
        if not isinstance(found, Mapping):
            return None
        found = found.get(part)
    return found


def holds(claims: Mapping[str, Any], name: str, wanted: str | list[str]) -> bool:
    """True when the claim (or one of its list items) is `wanted` or one of its values. Only strings, integers and
    booleans (as `"true"` / `"false"`: Supabase's `is_anonymous`) can match: an object, list or float never does
    (and is never hashed, so no claim shape can make this raise)."""
    allowed = {wanted} if isinstance(wanted, str) else set(wanted)
    have = claim_at(claims, name)
    values = have if isinstance(have, list) else [have]
    return any(claim_text(value) in allowed for value in values)


def claim_text(value: object) -> str | None:
    """A claim value as configuration compares it: a string, a boolean as "true" / "false", an integer's digits;
    else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def check_header(header: Mapping[str, Any]) -> str:
    """The header's `alg`, once every member this service reads has the type RFC 7515 gives it."""
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise Rejected("algorithm")
    if "crit" in header or header.get("b64", True) is not True:
        raise Rejected("crit")  # no extensions: RFC 7797's unencoded payloads among them
    if "kid" in header:
        kid = header["kid"]
        if not isinstance(kid, str) or len(kid) > MAX_KID_CHARS:
            raise Rejected("bad_kid")
    if "cty" in header:
        cty = header["cty"]
        if not isinstance(cty, str):
            raise Rejected("cty")
        if cty.lower() in ("jwt", "application/jwt"):
            raise Rejected("nested")
    if "typ" in header:
        typ = header["typ"]
        if not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYP:
            raise Rejected("typ")
    return alg


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """RFC 7519 NumericDate: a finite JSON number, not a boolean; None when absent."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected("invalid")
    try:
        seconds = float(value)
    except OverflowError:  # an integer beyond any float
        raise Rejected("invalid") from None
    if not math.isfinite(seconds):
        raise Rejected("invalid")
    return seconds


def check_claims(claims: Mapping[str, Any], cfg: IssuerConfig, audiences: frozenset[str]) -> float:
    """The registered claims (RFC 7519 §4.1) plus max token age.

    Returns until when the time-bound checks keep holding (at most VERIFIED_CACHE_SECONDS from now): how long
    the verified token may be answered from memory.
    """
    now = time.time()
    leeway = float(cfg.leeway)
    required = ("exp", "iss", "iat") if cfg.max_token_age is not None else ("exp", "iss")
    if any(claims.get(name) is None for name in required) or claim_at(claims, cfg.audience_claim) is None:
        raise Rejected("missing_claim")
    exp = _numeric_date(claims, "exp")
    nbf = _numeric_date(claims, "nbf")
    iat = _numeric_date(claims, "iat")
    if exp is None:
        raise Rejected("missing_claim")
    if exp <= now - leeway:
        raise Rejected("expired")
    if (nbf is not None and nbf > now + leeway) or (iat is not None and iat > now + leeway):
        raise Rejected("not_yet_valid")
    if claims["iss"] != cfg.issuer:
        raise Rejected("audience_or_issuer")
    audience = claim_at(claims, cfg.audience_claim)
    listed = [audience] if isinstance(audience, str) else audience
    if not isinstance(listed, list) or not all(isinstance(a, str) for a in listed):
        raise Rejected("invalid")
    if audiences.isdisjoint(listed):
        raise Rejected("audience_or_issuer")
    _check_issuer_rules(claims, cfg)
    for name in ("sub", "jti"):
        if name in claims and not isinstance(claims[name], str):
            raise Rejected("invalid")
    valid_until = min(now + VERIFIED_CACHE_SECONDS, exp + leeway)
    if cfg.max_token_age is not None:
        if iat is None:
            raise Rejected("missing_claim")
        too_old_at = iat + float(cfg.max_token_age) + leeway
        if now > too_old_at:
            raise Rejected("too_old")
        valid_until = min(valid_until, too_old_at)
    return valid_until


def _check_issuer_rules(claims: Mapping[str, Any], cfg: IssuerConfig) -> None:
    """The issuer's own rules: the authorized party (`azp`) and the claims every token of it must hold."""
    if cfg.authorized_parties:
        azp = claims.get("azp")
        if not isinstance(azp, str) or azp not in cfg.authorized_parties:
            raise Rejected("authorized_party")
    for name, wanted in cfg.require_claims.items():
        if not holds(claims, name, wanted):
            raise Rejected("required_claim")


def identity(claims: Mapping[str, Any], cfg: IssuerConfig) -> CallerIdentity:
    """The caller named by the issuer's configured subject, tenant and scopes claims."""
    subject = claim_at(claims, cfg.subject_claim)
    if (
        not isinstance(subject, str)
        or not subject.strip()
        or len(subject) > MAX_CLAIM_CHARS
        or _CONTROL.search(subject) is not None  # it keys rate limits and sits in every log line of the request
    ):
        raise Rejected("subject")
    tenant: str | None = None
    if cfg.tenant_claim is not None:
        raw_tenant = claim_at(claims, cfg.tenant_claim)
        if raw_tenant is not None:
            if isinstance(raw_tenant, bool) or not isinstance(raw_tenant, str | int):
                raise Rejected("tenant")
            tenant = str(raw_tenant)
            if len(tenant) > MAX_CLAIM_CHARS or _CONTROL.search(tenant) is not None:
                raise Rejected("tenant")  # refused, not cut short: two long tenants must not share a budget
    raw_scopes = claim_at(claims, cfg.scopes_claim)
    if isinstance(raw_scopes, str):
        scopes = frozenset(raw_scopes.split())
    elif isinstance(raw_scopes, list) and all(isinstance(s, str) for s in raw_scopes):
        scopes = frozenset(raw_scopes)
    else:
        scopes = frozenset()
    return CallerIdentity(cfg.issuer, subject, tenant, scopes, claims)
