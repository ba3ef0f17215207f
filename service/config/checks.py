"""Field rules msgspec cannot carry itself, written on the field all the same: `Annotated[T, Within(...)]`.

msgspec's `Meta(gt=…)` applies to plain numbers and strings only; a Duration is read by a hook and a URL
needs parsing, so these run right after conversion (`check_fields`), naming the key like msgspec does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec

from service.config.duration import format_seconds
from service.config.endpoints import check_http_url
from service.config.errors import ConfigError

BOUND_WORDS = {">=": "at least", ">": "more than", "<=": "at most", "<": "less than"}


def must_be(op: str, limit: str) -> str:
    """A broken bound in words: ("<=", "5s") → "must be at most 5s"."""
    return f"must be {BOUND_WORDS[op]} {limit}"


class FieldCheck:
    """A rule about one field's value, carried in its `Annotated[...]`."""

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` (None when nothing is)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Within(FieldCheck):
    """Bounds of a Duration field: `Annotated[Duration, Within(gt=0, le=5)]`."""

    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def problem(self, value: Any) -> str | None:
        """The first bound `value` (seconds) breaks, in words."""
        if self.gt is not None and not value > self.gt:
            return must_be(">", format_seconds(self.gt))
        if self.le is not None and not value <= self.le:
            return must_be("<=", format_seconds(self.le))
        if self.lt is not None and not value < self.lt:
            return must_be("<", format_seconds(self.lt))
        return None


@dataclass(frozen=True)
class HttpUrl(FieldCheck):
    """An http:// or https:// URL with a host and no credentials, query or fragment."""

    def problem(self, value: Any) -> str | None:
        """Why `value` is not such a URL."""
        try:
            check_http_url(value)
        except ValueError as exc:
            return str(exc)
        return None


def check_fields(obj: msgspec.Struct, key: str = "") -> None:
    """Run every FieldCheck on the fields of `obj` and of the tables inside it; ConfigError names the key."""
    for field in msgspec.structs.fields(obj):
        value = getattr(obj, field.name)
        where = f"{key}.{field.encode_name}" if key else field.encode_name
        for check in _checks_on(field.type):
            if value is not None and (problem := check.problem(value)):
                raise ConfigError(f"{where}: {problem}")
        for inner_key, inner in _tables_in(value, where):
            check_fields(inner, inner_key)


def _checks_on(annotation: Any) -> Iterator[FieldCheck]:
    """The FieldChecks in `Annotated[T, ...]`, also inside `... | None`."""
    candidates = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    for candidate in candidates:
        if get_origin(candidate) is Annotated:
            yield from (m for m in candidate.__metadata__ if isinstance(m, FieldCheck))


def _tables_in(value: Any, key: str) -> Iterator[tuple[str, msgspec.Struct]]:
    if isinstance(value, msgspec.Struct):
        yield key, value
    elif isinstance(value, list):
        yield from ((f"{key}[{i}]", item) for i, item in enumerate(value) if isinstance(item, msgspec.Struct))
    elif isinstance(value, dict):
        yield from ((f"{key}.{name}", item) for name, item in value.items() if isinstance(item, msgspec.Struct))
