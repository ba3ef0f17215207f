"""TOML file (plus the environment) → validated Settings; msgspec's errors rewritten as `dotted.key: message`."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi

from service.config.checks import BOUND_WORDS, check_fields, must_be
from service.config.duration import Duration
from service.config.environment import load_env
from service.config.errors import ConfigError
from service.config.live_models import check_models
from service.config.model import PATTERN_MEANINGS, FileConfig, ProfileConfig, ProfileName
from service.config.rules import check_rules
from service.config.settings import Settings

_TYPE_NAMES = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean"}
_TYPE_NAMES |= {"array": "an array", "object": "a table"}
_MEANINGS = {repr(pattern): meaning for pattern, meaning in PATTERN_MEANINGS.items()}


def load_settings(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    """Load the file at `path` plus the environment into validated Settings."""
    environ = os.environ if env is None else env
    file = load_file_config(path)
    return Settings(file=file, env=load_env(environ, file), dev_mode=False, config_path=str(path))


def load_file_config(path: str | Path) -> FileConfig:
    """Read and validate a TOML configuration file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_file_config(data)


def parse_file_config(data: Mapping[str, Any]) -> FileConfig:
    """Convert a parsed TOML mapping to a validated FileConfig."""
    profiles = data.get("profiles")
    if isinstance(profiles, Mapping):
        # Converted one by one so an error names the profile (msgspec writes a dict key as `[...]`).
        converted = {
            _convert(name, ProfileName, f"profiles.{name}"): _convert(raw, ProfileConfig, f"profiles.{name}")
            for name, raw in profiles.items()
        }
        data = {**data, "profiles": converted}
    cfg: FileConfig = _convert(data, FileConfig, "")
    check_fields(cfg)
    check_rules(cfg)
    check_models(cfg)
    return cfg


def _dec_hook(typ: type, obj: Any) -> Any:
    if typ is Duration:
        return Duration.parse(obj)
    raise NotImplementedError(f"cannot read {typ!r}")


def _convert(data: Any, typ: Any, prefix: str) -> Any:
    """msgspec.convert with errors rewritten to name the key as a dotted path, in plain words."""
    try:
        return msgspec.convert(data, typ, dec_hook=_dec_hook, strict=True)
    except msgspec.ValidationError as err:
        text, _, at = str(err).partition(" - at ")
        path = m.group(1).lstrip(".") if (m := re.search(r"`\$([^`]*)`\Z", at)) else ""
        where = ".".join(part for part in (prefix, path) if part).replace(".[", "[")
        if m := re.fullmatch(r"Object (contains unknown|missing required) field `([^`]+)`", text):
            what = "unknown key" if m.group(1) == "contains unknown" else "required key is missing"
            raise ConfigError(f"{f'{where}.' if where else ''}{m.group(2)}: {what}") from None
        raise ConfigError(f"{where or '(top level)'}: {_readable(text, typ, path)}") from None


def _readable(text: str, typ: Any, path: str) -> str:
    """msgspec's wording of a broken constraint ("Expected `int` >= 1") as a user would say it."""
    if m := re.fullmatch(r"Expected `(?:int|float)` ([<>]=?) (\S+)", text):
        return must_be(m.group(1), f"{float(m.group(2)):g}")
    if m := re.fullmatch(r"Expected `(str|array|object)` of length ([<>]=) (\d+)", text):
        return _length_rule(m.group(1), m.group(2), int(m.group(3)))
    if m := re.fullmatch(r"Expected `str` matching regex (.+)", text):
        return f"must be {_MEANINGS[m.group(1)]}" if m.group(1) in _MEANINGS else f"must match {m.group(1)}"
    if m := re.fullmatch(r"Invalid enum value (.+)", text):
        choices = ", ".join(map(str, _choices(typ, path)))
        return f"{m.group(1)} is not one of {choices}" if choices else f"{m.group(1)} is not allowed"
    if m := re.fullmatch(r"Expected `([^`]+)`, got `([^`]+)`", text):
        # TOML has no null, so "or null" (an optional key) is not worth saying.
        expected = " or ".join(_TYPE_NAMES.get(name, name) for name in m.group(1).split(" | ") if name != "null")
        return f"expected {expected}, got {_TYPE_NAMES.get(m.group(2), m.group(2))}"
    return text


def _length_rule(kind: str, op: str, n: int) -> str:
    if kind == "str":
        return "must not be empty" if (op, n) == (">=", 1) else must_be(op, f"{n} characters long")
    noun = ("item" if n == 1 else "items") if kind == "array" else ("entry" if n == 1 else "entries")
    return f"must {'list' if kind == 'array' else 'have'} {BOUND_WORDS[op]} {n} {noun}"


def _choices(typ: Any, path: str) -> tuple[Any, ...]:
    """The values of the Literal at `path` (msgspec's `a.b[0]`) inside `typ`, or () if it is none."""
    info = mi.type_info(typ)
    for part in re.findall(r"\[[^\]]*\]|[^.\[]+", path):
        info = _unwrap(info)
        if isinstance(info, mi.StructType):
            info = next((field.type for field in info.fields if field.encode_name == part), mi.AnyType())
        elif isinstance(info, mi.ListType | mi.DictType):
            info = info.item_type if isinstance(info, mi.ListType) else info.value_type
    info = _unwrap(info)
    return info.values if isinstance(info, mi.LiteralType) else ()


def _unwrap(info: mi.Type) -> mi.Type:
    """The type under constraints and `| None`."""
    if isinstance(info, mi.Metadata):
        return _unwrap(info.type)
    if isinstance(info, mi.UnionType) and len(kinds := [t for t in info.types if not isinstance(t, mi.NoneType)]) == 1:
        return _unwrap(kinds[0])
    return info
