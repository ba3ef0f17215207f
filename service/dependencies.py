"""The libraries whose private names or internals livetoken uses, and the versions it is tested with.

Each is bounded in pyproject.toml to the range below; `livetoken serve` checks the installed versions first and
refuses to start, in one line naming the library, its version and the tested range, instead of failing later
in a way that looks like an outage (a renamed private attribute, a changed internal protocol).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

# name -> (lowest tested, first untested), and what of it livetoken goes below the public API for.
TESTED: dict[str, tuple[str, str, str]] = {
    "google-genai": ("3.6", "3.7", "the minter's SDK seam (service/upstream/sdk.py)"),
    "uvicorn": ("0.54", "0.55", "the server's connection handling (service/http_protocol.py)"),
    "redis": ("8.1", "8.2", "the limiter's pipelined connection (service/ratelimit/connections.py)"),
}


class DependencyError(Exception):
    """An installed library is outside the range livetoken is tested with."""


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+", maxsplit=1)[0])[:3])


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def check_dependencies(installed: Callable[[str], str | None] | None = None) -> None:
    """Raise DependencyError, in one line, for the first library outside its tested range (`installed` tells a
    library's version; default: the environment's)."""
    for name, (lowest, first_untested, why) in TESTED.items():
        found = (installed or _installed)(name)
        wanted = f"{name}>={lowest},<{first_untested}"
        if found is None:
            raise DependencyError(f"{name} is not installed; livetoken needs {wanted} for {why}")
        if not _release(lowest) <= _release(found) < _release(first_untested):
            raise DependencyError(
                f"{name} {found} is outside the range livetoken is tested with ({wanted}), which {why} relies on; "
                f"install {wanted} (pip install -c requirements.lock -e .)"
            )
