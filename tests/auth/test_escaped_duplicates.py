"""A duplicate member is refused however its name or value is written: the fast JSON path and the strict one decide
the same on escaped input (a planted fast path that skips the colon count would let an escaped duplicate through)."""

from __future__ import annotations

import pytest

from service.auth.compact import Rejected, json_object, strict_json_object

DUPLICATES = [
    pytest.param(b'{"sub": "alice", "s\\u0075b": "mallory"}', id="escaped-name"),
    pytest.param(b'{"sub": "alice", "\\u0073\\u0075\\u0062": "mallory"}', id="fully-escaped-name"),
    pytest.param(b'{"a\\u003ab": 1, "a:b": 2}', id="escaped-colon-in-name"),
    pytest.param(b'{"x": "a\\u0022b", "x": "c"}', id="escaped-quote-in-value"),
    pytest.param(b'{"x": "\\u003a", "x": 1}', id="escaped-colon-in-value"),
    pytest.param(b'{"sub":"alice","sub":"mallory"}', id="plain"),
]

DISTINCT = [
    pytest.param(b'{"a\\u003ab": 1, "ab": 2}', {"a:b": 1, "ab": 2}, id="escaped-colon-distinct"),
    pytest.param(b'{"x": "\\u0022:\\u0022", "y": ":"}', {"x": '":"', "y": ":"}, id="colons-in-values"),
]


@pytest.mark.parametrize("raw", DUPLICATES)
def test_a_duplicate_member_is_refused_however_it_is_escaped(raw: bytes) -> None:
    """Both decoders refuse it, as `duplicate_member`."""
    for decode in (json_object, strict_json_object):
        with pytest.raises(Rejected) as refused:
            decode(raw)
        assert str(refused.value) == "duplicate_member", decode.__name__


@pytest.mark.parametrize(("raw", "value"), DISTINCT)
def test_escaped_but_distinct_members_decode_alike(raw: bytes, value: dict[str, object]) -> None:
    """Members that only look alike once escaped are not duplicates: both decoders give the same object."""
    assert json_object(raw) == strict_json_object(raw) == value
