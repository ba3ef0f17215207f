"""requirements-min.txt: every runtime dependency at the LOWEST version pyproject.toml allows (`make test-lowest`).

    python scripts/requirements_min.py          # regenerate it (uv pip compile --resolution lowest-direct; PyPI)
    python scripts/requirements_min.py --check  # offline: it still matches pyproject.toml and requirements.lock

Each [project.dependencies] entry is pinned to its `>=` bound, which must be a release that installs with the
others: uv picks the lowest one the whole set resolves to, and --check fails until pyproject.toml says so (a bound
that names only a series, `>=3.6`, is met by that series' first release, 3.6.1 where there is no 3.6.0).
Their own dependencies take the highest versions those allow, as a fresh install would. The test tools the
seam tests need stay at requirements.lock's versions, so only the libraries livetoken ships with move.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "requirements-min.txt"
PYTHON = "3.11"  # requires-python's lowest: the oldest wheels are resolved for it
# What the seam tests run with besides the runtime dependencies (pytest's asyncio mode, property tests, the SDK's
# REST transport, the reference HTTP/1.1 parser, the egress tests' forward proxy), at requirements.lock's versions.
TEST_TOOLS = ("pytest", "pytest-asyncio", "hypothesis", "aiohttp", "h11", "proxy.py")
COMMAND = "python scripts/requirements_min.py"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def runtime_requirements() -> list[Requirement]:
    """pyproject.toml's [project.dependencies] that apply on this platform."""
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [r for r in map(Requirement, listed) if r.marker is None or r.marker.evaluate()]


def pins(path: Path) -> dict[str, Version]:
    """name -> version of every `name==version` line."""
    found: dict[str, Version] = {}
    for line in path.read_text().splitlines():
        if match := _PIN.match(line.strip()):
            found[canonicalize_name(match[1])] = Version(match[2])
    return found


def lower_bound(requirement: Requirement) -> Version | None:
    """The version its `>=` (or `==`) specifier names."""
    bounds = [Version(s.version) for s in requirement.specifier if s.operator in {">=", "=="}]
    return max(bounds) if bounds else None


def test_tool_pins() -> list[str]:
    locked = pins(ROOT / "requirements.lock")
    return [f"{tool}=={locked[canonicalize_name(tool)]}" for tool in TEST_TOOLS]


def problems() -> list[str]:
    """How requirements-min.txt disagrees with pyproject.toml and requirements.lock (empty: it agrees)."""
    if not OUTPUT.exists():
        return [f"{OUTPUT.name} is missing"]
    pinned = pins(OUTPUT)
    found: list[str] = []
    for requirement in runtime_requirements():
        name, lowest = canonicalize_name(requirement.name), lower_bound(requirement)
        if lowest is None:
            found.append(f"{requirement} has no lower bound in pyproject.toml")
        elif name not in pinned:
            found.append(f"{requirement.name} is not in {OUTPUT.name}")
        elif pinned[name] not in requirement.specifier or pinned[name].release[: len(lowest.release)] != lowest.release:
            found.append(
                f"{requirement.name}: pyproject.toml allows {lowest} but {OUTPUT.name} has {pinned[name]} "
                f"(raise the bound to the lowest version that installs, or regenerate: {COMMAND})"
            )
    for tool in test_tool_pins():
        tool_name, version = tool.split("==")
        if pinned.get(canonicalize_name(tool_name)) != Version(version):
            found.append(f"{tool_name} is not at requirements.lock's {version} in {OUTPUT.name}")
    return found


def generate() -> None:
    """Resolve pyproject.toml's dependencies at their lowest (and the test tools as locked) into OUTPUT."""
    with tempfile.TemporaryDirectory() as tmp:
        tools = Path(tmp) / "test-tools.txt"
        tools.write_text("\n".join(test_tool_pins()) + "\n")
        subprocess.run(  # noqa: S603 - uv from this venv, with arguments built here
            [
                str(Path(sys.executable).parent / "uv"),
                "pip",
                "compile",
                "--quiet",
                "--resolution",
                "lowest-direct",
                "--python-version",
                PYTHON,
                "--no-annotate",
                "--custom-compile-command",
                COMMAND,
                "--output-file",
                str(OUTPUT),
                str(ROOT / "pyproject.toml"),
                str(tools),
            ],
            check=True,
            cwd=ROOT,
        )


def main(argv: list[str]) -> int:
    if argv not in ([], ["--check"]):
        print(__doc__, file=sys.stderr)
        return 2
    if not argv:
        generate()
    if found := problems():
        print("\n".join(f"{OUTPUT.name}: {problem}" for problem in found), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
