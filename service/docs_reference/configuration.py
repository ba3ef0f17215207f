"""docs/reference/configuration.md: every key of the TOML file, walked from `FileConfig` down through its tables.

Types and defaults come from the structs (msgspec's field info, the `Annotated` bounds on each field); a key's
meaning is the attribute docstring that follows its field in service/config/model.py, read with `ast` because
Python keeps no such docstring at run time. A field without one stops the generator, naming it.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec

from service.config import model
from service.config.checks import BOUND_WORDS, FieldCheck, Within
from service.config.duration import Duration, format_seconds
from service.docs_reference.markdown import anchor, cell, code, name, page, table

SOURCE = Path(model.__file__)
_NAMES: dict[Any, tuple[str, str]] = {
    str: ("string", "strings"),
    int: ("integer", "integers"),
    float: ("number", "numbers"),
    bool: ("boolean", "booleans"),
    Duration: ("duration", "durations"),
}


class UndocumentedFieldError(ValueError):
    """A configuration field has no attribute docstring to explain it."""


@dataclass(frozen=True)
class _Table:
    """One TOML table of the reference: the struct that reads it and where it sits in the file."""

    struct: type[msgspec.Struct]
    header: str  # as the file writes it: "[server]", "[[issuers]]", "[profiles.NAME]"; "" for the top level
    path: str  # the header's dotted path ("profiles.NAME.tools"), also the section's id
    key_prefix: str  # what its keys are named under: "profiles.NAME.tools[]" (an array's entries), "server"


def field_docstrings(source: str) -> dict[tuple[str, str], str]:
    """(class, attribute) → the string statement that follows the attribute's annotated assignment in its class."""
    found: dict[tuple[str, str], str] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for statement, following in itertools.pairwise(node.body):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                found[node.name, statement.target.id] = inspect.cleandoc(following.value.value)
    return found


def render() -> str:
    """The configuration reference page."""
    docs = field_docstrings(SOURCE.read_text(encoding="utf-8"))
    sections = []
    for spot in _tables(_Table(model.FileConfig, "", "top-level", "")):
        title = code(spot.header) if spot.header else "Top level"
        intro = inspect.getdoc(spot.struct) or ""
        rows = [_row(spot, field, docs) for field in msgspec.structs.fields(spot.struct)]
        sections.append(
            f'## {title} {{ id="{spot.path}" }}\n\n{intro}\n\n' + table(["key", "type", "default", "meaning"], rows)
        )
    return page(
        "Configuration",
        [_relative(SOURCE)],
        "Every key of the TOML file (`serve --config` or `LIVETOKEN_CONFIG`), table by table. A key written "
        "`limits.subject[].rate` is the `rate` of each `[[limits.subject]]` entry; `NAME` stands for a profile's "
        'name. Durations are a number of seconds or a string such as `"250ms"`, `"60s"`, `"15m"`, `"2h"`, '
        '`"1d"`. An unknown key is an error, and so is a value out of its bounds: the message names the key.',
        sections,
    )


def _relative(path: Path) -> str:
    return path.relative_to(Path(__file__).resolve().parents[2]).as_posix()


def _tables(spot: _Table) -> list[_Table]:
    """`spot` and every table inside it, depth first, in the order the fields are declared."""
    found = [spot]
    for field in msgspec.structs.fields(spot.struct):
        inner = _table_in(spot, field)
        if inner is not None:
            found.extend(_tables(inner))
    return found


def _table_in(spot: _Table, field: msgspec.structs.FieldInfo) -> _Table | None:
    """The table `field` holds (a table, an array of tables, tables by name), or None for a plain value."""
    bare, _, _ = _strip(field.type)
    path = f"{spot.path}.{field.encode_name}" if spot.header else field.encode_name
    key = f"{spot.key_prefix}.{field.encode_name}" if spot.key_prefix else field.encode_name
    if _is_struct(bare):
        return _Table(bare, f"[{path}]", path, key)
    args = get_args(bare)
    if get_origin(bare) is list and _is_struct(_strip(args[0])[0]):
        return _Table(_strip(args[0])[0], f"[[{path}]]", path, f"{key}[]")
    if get_origin(bare) is dict and _is_struct(_strip(args[1])[0]):
        return _Table(_strip(args[1])[0], f"[{path}.NAME]", f"{path}.NAME", f"{key}.NAME")
    return None


def _row(spot: _Table, field: msgspec.structs.FieldInfo, docs: dict[tuple[str, str], str]) -> list[str]:
    meaning = docs.get((spot.struct.__name__, field.name))
    if meaning is None:
        raise UndocumentedFieldError(
            f"{_relative(SOURCE)}: {spot.struct.__name__}.{field.name} has no docstring (a string right after it "
            "says what it means, its default and bounds)"
        )
    key = f"{spot.key_prefix}.{field.encode_name}" if spot.key_prefix else field.encode_name
    inner = _table_in(spot, field)
    if inner is None:
        shown = anchor(key.replace("[]", "")) + name(key)
        kind = _words(field.type)
    else:  # the key's own section says the rest: link there
        shown = name(key)
        kind = _table_words(field.type, inner)
    return [shown, cell(kind), _default(field), cell(meaning)]


def _table_words(annotation: Any, inner: _Table) -> str:
    bare, metadata, _ = _strip(annotation)
    link = f"[{code(inner.header)}](#{inner.path})"
    if inner.header.startswith("[["):
        return f"array of tables {link}" + _in_parentheses(_length_words(metadata, "table"))
    if inner.path.endswith(".NAME"):
        name_type = get_args(bare)[0]
        counted = _in_parentheses(_length_words(metadata, "table"))
        return f"tables by name{counted}, {link}; NAME: {_words(name_type)}"
    return f"table {link}"


def _default(field: msgspec.structs.FieldInfo) -> str:
    if field.required:
        return "**required**"
    value = field.default_factory() if field.default is msgspec.NODEFAULT else field.default
    if value is None:
        return "*none*"
    if isinstance(value, msgspec.Struct):
        return "*its keys' defaults*"
    return code(_toml(value, field.type))


def _toml(value: Any, annotation: Any) -> str:  # noqa: PLR0911 - one answer per kind of TOML value
    """`value` as TOML writes it (durations as a string such as "2s")."""
    bare, _, _ = _strip(annotation)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Duration) or bare is Duration:
        return json.dumps(format_seconds(value))
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, msgspec.Struct):
        pairs = [
            f"{f.encode_name} = {_toml(getattr(value, f.name), f.type)}"
            for f in msgspec.structs.fields(value)
            if getattr(value, f.name) is not None
        ]
        return "{ " + ", ".join(pairs) + " }"
    if isinstance(value, list):
        item = get_args(bare)[0] if get_args(bare) else Any
        return "[" + ", ".join(_toml(v, item) for v in value) + "]"
    if isinstance(value, dict):
        item = get_args(bare)[1] if get_args(bare) else Any
        return "{ " + ", ".join(f"{k} = {_toml(v, item)}" for k, v in value.items()) + " }" if value else "{}"
    raise TypeError(f"no TOML form for the default {value!r}")


def _strip(annotation: Any) -> tuple[Any, list[Any], bool]:
    """(the bare type, the metadata of its `Annotated` layers, whether it may be None)."""
    metadata: list[Any] = []
    optional = False
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            metadata.extend(annotation.__metadata__)
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType) and NoneType in get_args(annotation) and len(get_args(annotation)) == 2:
            optional = True
            annotation = next(a for a in get_args(annotation) if a is not NoneType)
        else:
            return annotation, metadata, optional


def _is_struct(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)


def _words(annotation: Any) -> str:
    """A value's type in words, with the bounds its field sets: "integer (1 to 65535)"."""
    kind, bounds = _kind(annotation, plural=False)
    return kind + _in_parentheses(bounds)


def _kind(annotation: Any, *, plural: bool) -> tuple[str, list[str]]:
    """(the type's name, the bounds on its values): ("list of strings", ["each non-empty", "at least 1 item"])."""
    bare, metadata, _ = _strip(annotation)
    origin, args = get_origin(bare), get_args(bare)
    if origin is Literal:
        choices = [code(json.dumps(a)) for a in args]
        text = choices[0] if len(choices) == 1 else ", ".join(choices[:-1]) + " or " + choices[-1]
        return (f"each {text}" if plural else text), []
    if origin in (Union, UnionType):
        return " or ".join(_words(a) for a in args if a is not NoneType), []
    if origin is list:
        head = "lists" if plural else "list"
        item, item_bounds = _kind(args[0], plural=True)
        text = f"{head}, {item}" if item.startswith("each ") else f"{head} of {item}"
        return text, [f"each {b}" for b in item_bounds] + _length_words(metadata, "item")
    if origin is dict:
        value = "any value" if args[1] is Any else _words(args[1])
        return f"table{'s' if plural else ''} of name → {value}", []
    if bare is Any:
        return "any value", []
    if bare not in _NAMES:
        raise TypeError(f"no words for the type {bare!r}")
    return _NAMES[bare][plural], _bound_words(bare, metadata)


def _in_parentheses(words: list[str]) -> str:
    return f" ({'; '.join(words)})" if words else ""


def _bound_words(bare: Any, metadata: list[Any]) -> list[str]:
    words = _length_words(metadata, "character") if bare is str else []
    for meta in metadata:
        if isinstance(meta, Within):
            bounds = [(">", meta.gt), ("<=", meta.le), ("<", meta.lt)]
            words.extend(f"{BOUND_WORDS[op]} {format_seconds(v)}" for op, v in bounds if v is not None)
        elif isinstance(meta, FieldCheck):  # HttpUrl and the like: what its docstring says it accepts
            said = inspect.getdoc(type(meta)) or type(meta).__name__
            words.append(said[0].lower() + said[1:].rstrip("."))
        elif isinstance(meta, msgspec.Meta):
            if meta.pattern is not None:
                words.insert(0, model.PATTERN_MEANINGS.get(meta.pattern) or f"matching {code(meta.pattern)}")
            if meta.ge is not None and meta.le is not None:
                words.append(f"{_number(meta.ge)} to {_number(meta.le)}")
                continue
            bounds = [(">=", meta.ge), (">", meta.gt), ("<=", meta.le), ("<", meta.lt)]
            words.extend(f"{BOUND_WORDS[op]} {_number(v)}" for op, v in bounds if v is not None)
    return words


def _length_words(metadata: list[Any], unit: str) -> list[str]:
    """A string's or a list's length bounds: "1 to 63 characters", "at least 1 item"."""
    for meta in metadata:
        if isinstance(meta, msgspec.Meta) and (meta.min_length is not None or meta.max_length is not None):
            low, high = meta.min_length or 0, meta.max_length
            if high is None and low == 1 and unit == "character":
                return ["non-empty"]
            if high is None:
                return [f"at least {low} {unit}{'s' if low != 1 else ''}"]
            return [f"exactly {low} {unit}{'s' if low != 1 else ''}" if low == high else f"{low} to {high} {unit}s"]
    return []


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"
