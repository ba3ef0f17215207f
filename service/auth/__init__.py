"""Caller authentication (JWT, JWKS) and authorization (profile `require` rules)."""

from service.auth.identity import CallerIdentity
from service.auth.jwks import JWKSCache
from service.auth.policy import may_use, satisfies
from service.auth.verifier import JWTVerifier

__all__ = ["CallerIdentity", "JWKSCache", "JWTVerifier", "may_use", "satisfies"]
