"""OpenID Connect Discovery 1.0: what of an issuer's `/.well-known/openid-configuration` livetoken takes.

Only `jwks_uri`, and only from a document that names the configured issuer exactly (Discovery §4.3: "the issuer
value returned MUST be identical to the Issuer URL that was used as the prefix to /.well-known/openid-configuration")
and whose `jwks_uri` is https (http only on a loopback address). The document is fetched from the configured
issuer URL, never from anything a token says. `id_token_signing_alg_values_supported` neither widens nor narrows
the configured `algorithms`: a document with none of them in common is only logged.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from service.auth.jwk_set import JWKSRejected
from service.config.endpoints import discovery_url_problem


@dataclass(frozen=True, slots=True)
class DiscoveryDocument:
    """The parts of a discovery document livetoken uses."""

    jwks_uri: str
    advertised: list[str]  # id_token_signing_alg_values_supported, as advertised (empty when absent)
    disjoint_algorithms: bool  # advertised, and none of the configured algorithms among them


def parse_discovery(raw: bytes, issuer: str, algorithms: frozenset[str]) -> DiscoveryDocument:
    """The document's jwks_uri once it is one livetoken may fetch; else JWKSRejected with a bounded reason."""
    try:
        document = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise JWKSRejected("not_json") from None
    if not isinstance(document, dict):
        raise JWKSRejected("not_an_object")
    if document.get("issuer") != issuer:
        raise JWKSRejected("issuer_mismatch")
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise JWKSRejected("no_jwks_uri")
    # Plain http only for a provider on this host: an https issuer may not send the keys' fetch to a local port.
    if discovery_url_problem(jwks_uri) is not None or (jwks_uri[:7].lower() == "http://" and issuer[:8] == "https://"):
        raise JWKSRejected("jwks_uri_not_https")
    advertised = document.get("id_token_signing_alg_values_supported")
    names = [a for a in advertised if isinstance(a, str)][:32] if isinstance(advertised, list) else []
    return DiscoveryDocument(jwks_uri, names, bool(names) and algorithms.isdisjoint(names))
