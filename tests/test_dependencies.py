"""Libraries used below their public API are bounded to the tested range, and serve checks them first."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from service import dependencies
from service.cli import main
from service.dependencies import TESTED, DependencyError, check_dependencies

ROOT = Path(__file__).resolve().parent.parent


def test_the_installed_versions_are_the_tested_ones() -> None:
    """What `make test` installed passes the check the service runs at start-up."""
    check_dependencies()


@pytest.mark.parametrize(
    ("versions", "line"),
    [
        (
            {"uvicorn": "0.55.0"},
            "uvicorn 0.55.0 is outside the range livetoken is tested with (uvicorn>=0.54,<0.55), which the server's "
            "connection handling (service/http_protocol.py) relies on; install uvicorn>=0.54,<0.55 "
            "(pip install -c requirements.lock -e .)",
        ),
        (
            {"redis": "5.0.8"},
            "redis 5.0.8 is outside the range livetoken is tested with (redis>=8.1,<8.2), which the limiter's "
            "pipelined connection (service/ratelimit/connections.py) relies on; install redis>=8.1,<8.2 "
            "(pip install -c requirements.lock -e .)",
        ),
        (
            {"google-genai": None},
            "google-genai is not installed; livetoken needs google-genai>=3.6,<3.7 for the minter's SDK seam "
            "(service/upstream/sdk.py)",
        ),
    ],
)
def test_a_library_outside_its_range_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], versions: dict[str, str | None], line: str
) -> None:
    """The check names the library, its version and the range; `serve` prints that one line and exits 1 before
    reading any configuration."""
    tested = {"google-genai": "3.6.1", "uvicorn": "0.54.0", "redis": "8.1.0"} | versions
    with pytest.raises(DependencyError) as err:
        check_dependencies(tested.get)
    assert str(err.value) == line
    monkeypatch.setattr(dependencies, "_installed", tested.get)
    assert main(["serve", "--config", "/nonexistent.toml"]) == 1
    assert capsys.readouterr().err == f"livetoken: {line}\n"


def test_pyproject_bounds_each_library_to_its_tested_range() -> None:
    """pyproject.toml asks for exactly the range the start-up check enforces, and granian is only the bench's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [r.split(";")[0].replace(" ", "") for r in project["dependencies"]]
    for name, (lowest, first_untested, _why) in TESTED.items():
        assert f"{name}>={lowest},<{first_untested}" in requirements, name
    names = {r.split(">")[0].split("=")[0].split("<")[0] for r in requirements}
    assert "granian" not in names
    assert "aiohttp" not in names
    assert project["optional-dependencies"]["bench"] == ["granian>=2.0"]
