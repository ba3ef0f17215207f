"""The Gemini API key file: one key a line, the first used, the others fallbacks.

Blank lines and lines starting with `#` are ignored, so a rotation can leave a note. A refusal names the line
number, never its content: the file holds secrets.
"""

from __future__ import annotations

import re
from pathlib import Path

from service.config.secret import Secret

MAX_API_KEYS = 10
"""At most this many keys in the file (each key's fingerprint is a metric label: the bound keeps it small)."""
GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_-]{35}")  # a Google API key: `AIza` and 35 more characters


def parse_api_keys(text: str) -> tuple[Secret, ...]:
    """The keys in a key file's text, in order, each once; ValueError if there is none or a line is not a key."""
    keys: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if any(c.isspace() or not c.isprintable() for c in line):
            raise ValueError(f"line {number} is not one key (a key has no spaces; comments start a line with #)")
        if line.startswith("AIza") and not GOOGLE_KEY.fullmatch(line):
            # A Google key cut short (a file caught half-written) or run on: never taken for a key.
            raise ValueError(f"line {number} is not a whole Google API key (AIza and 35 letters, digits, - or _)")
        if line not in keys:
            keys.append(line)
    if not keys:
        raise ValueError("holds no key (one key a line; blank lines and # comments are ignored)")
    if len(keys) > MAX_API_KEYS:
        raise ValueError(f"holds {len(keys)} keys, more than {MAX_API_KEYS}")
    return tuple(Secret(k) for k in keys)


def read_key_file_text(path: str) -> str:
    """The text of the key file at `path` (symlinks followed, as a Kubernetes Secret volume has them); ValueError."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path!r} is not UTF-8 text") from None


def read_api_key_file(path: str) -> tuple[Secret, ...]:
    """The keys in the file at `path`; ValueError naming what is wrong (never a key)."""
    return parse_api_keys(read_key_file_text(path))
