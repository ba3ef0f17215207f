"""Reading a JWS in compact serialization strictly: RFC 7515 base64url, RFC 8259 JSON objects, nothing else.

Everything here refuses with `Rejected` (a bounded reason); no other exception leaves this module for any input.
"""

from __future__ import annotations

import binascii
import json
import math
import re
from typing import Any, NoReturn

import msgspec

# Deeper than any real JWT (Keycloak's `resource_access.<client>.roles` is three levels), far from the recursion
# limit: a claim this deep would be a hazard for whatever walks the claims later.
MAX_JSON_DEPTH = 16
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# The last character of 2 (or 3) leftover characters carries 4 (or 2) unused bits, which must be zero.
_CANONICAL_LAST = {2: frozenset(_ALPHABET[::16]), 3: frozenset(_ALPHABET[::4])}
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_SURROGATE = re.compile("[\ud800-\udfff]")


class Rejected(Exception):
    """A verification step failed; `reason` is a bounded label for metrics and debug logs, never shown to clients."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.lasting = True  # the same bytes would be refused again (JWKS key refusals are not: verifier.py)
        super().__init__(reason)


def b64url_decode(segment: str) -> bytes:
    """Strict unpadded base64url (RFC 7515 §2): only `A-Za-z0-9-_`, no padding, no spaces, canonical last char.

    The last check refuses a second spelling of the same bytes (non-zero unused bits), so a signature has
    exactly one accepted form.
    """
    tail = len(segment) % 4
    if _B64URL.fullmatch(segment) is None or tail == 1 or (tail and segment[-1] not in _CANONICAL_LAST[tail]):
        raise Rejected("malformed")
    # ASCII only now (the match saw to it): a bytes table swaps the alphabet far faster than str.translate.
    return binascii.a2b_base64(segment.encode("ascii").translate(_TO_STANDARD) + b"==")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise Rejected("duplicate_member")
        out[key] = value
    return out


def _no_constant(_name: str) -> NoReturn:
    raise Rejected("non_finite_number")  # NaN, Infinity, -Infinity: JavaScript, not JSON


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 overflows to inf
        raise Rejected("non_finite_number")
    return value


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_float=_finite_float)


def _vet(value: Any) -> None:
    """Nesting within MAX_JSON_DEPTH and no lone surrogates (which no encoder downstream could write)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth >= MAX_JSON_DEPTH:
                raise Rejected("too_deep")
            for key, member in item.items():
                if _SURROGATE.search(key):
                    raise Rejected("malformed")
                stack.append((member, depth + 1))
        elif isinstance(item, list):
            if depth >= MAX_JSON_DEPTH:
                raise Rejected("too_deep")
            stack.extend((member, depth + 1) for member in item)
        elif isinstance(item, str) and _SURROGATE.search(item):
            raise Rejected("malformed")


_FAST_DECODE = msgspec.json.Decoder().decode
_SCALARS = (str, int, float, bool, type(None))
_INT64 = (-(2**63), 2**64)


def _colons_in(member: Any, *, nested: bool = False) -> int | None:
    """The `:` in a plain member (a scalar, or a flat list of them); None for anything else."""
    kind = type(member)
    if kind is str:
        return int(member.count(":"))
    if kind is int:
        return 0 if _INT64[0] <= member < _INT64[1] else None
    if kind is list and not nested:
        total = 0
        for item in member:
            inside = _colons_in(item, nested=True)
            if inside is None:
                return None
            total += inside
        return total
    return 0 if kind in _SCALARS else None


def _plain_object(raw: bytes) -> dict[str, Any] | None:
    """The common JWT segment, a flat object with no escapes, decoded by msgspec (a tenth of the stdlib's cost);
    None hands anything else to the strict path, so what is accepted and refused is decided as before.

    Without escapes every `:` in the text is a member separator or sits in a string as itself; so the text has
    exactly as many as the decoded members plus those in the decoded strings unless a member was repeated
    (msgspec keeps the last), and then the strict path refuses it.
    """
    if b"\\" in raw:
        return None
    try:
        value = _FAST_DECODE(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    if type(value) is not dict:
        return None
    colons = 0
    for key, member in value.items():
        inside = _colons_in(member)
        if inside is None:
            return None
        colons += key.count(":") + inside
    if raw.count(b":") != len(value) + colons:
        return None
    return value


def json_object(raw: bytes) -> dict[str, Any]:
    """A UTF-8 JSON object without duplicate members, non-finite numbers, lone surrogates or deep nesting."""
    plain = _plain_object(raw)
    if plain is not None:
        return plain
    return strict_json_object(raw)


def strict_json_object(raw: bytes) -> dict[str, Any]:
    """json_object for any input: the stdlib decoder with every check (and each refusal's reason)."""
    try:
        text = raw.decode("utf-8")  # RFC 7519 §7.2; json.loads(bytes) would also take UTF-16 and UTF-32
        value = _DECODER.decode(text)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, ints past Python's digit limit
        raise Rejected("malformed") from None
    if not isinstance(value, dict):
        raise Rejected("malformed")
    # The walk is only needed when the text could hold deep nesting or a surrogate escape (\ud800-\udfff);
    # most tokens hold neither.
    if text.count("{") + text.count("[") > MAX_JSON_DEPTH or "\\ud" in text or "\\uD" in text:
        _vet(value)
    return value


def split_compact(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, payload, signing input and signature of a compact JWS (RFC 7515 §7.1)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Rejected("malformed")
    signature = b64url_decode(parts[2])
    header = json_object(b64url_decode(parts[0]))
    payload = json_object(b64url_decode(parts[1]))
    return header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), signature
