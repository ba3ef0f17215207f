"""Durations as TOML writes them: "250ms", "60s", "15m", "2h", "30d" or a number of seconds."""

from __future__ import annotations

import math
import re


class Duration(float):
    """Seconds, written in TOML as a number or a string such as "250ms", "60s", "15m", "2h", "1d"."""

    _PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
    _UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

    @classmethod
    def parse(cls, value: object) -> Duration:
        """Turn a TOML value into seconds or raise ValueError."""
        if isinstance(value, bool):
            raise ValueError('expected a duration such as 60, "60s" or "15m"')
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and (m := cls._PATTERN.match(value)):
            seconds = float(m.group(1)) * cls._UNITS[m.group(2)]
        else:
            raise ValueError('expected a duration such as 60, "60s" or "15m"')
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("a duration must be a finite, non-negative number of seconds")
        return cls(seconds)


def format_seconds(seconds: float) -> str:
    """A duration the way a config file writes it: 0, 250ms, 1.5s, 15m, 20h."""
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
