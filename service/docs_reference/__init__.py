"""The reference pages of the documentation site (docs/reference/), generated from the code: `make docs-reference`.

Each page is made from the one place its facts live: the configuration model, the environment registries, the
CLI's parser, the metrics registry, the error tree and openapi.yaml. tests/ops/test_docs.py regenerates them and
fails when the checked-in pages differ.
"""

from __future__ import annotations

from pathlib import Path

from service.docs_reference import commands, configuration, environment, http_api, metrics, problems

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"


def render_pages() -> dict[str, str]:
    """File name → content of every file docs/reference/ holds."""
    openapi = http_api.OPENAPI.read_text(encoding="utf-8")
    return {
        "configuration.md": configuration.render(),
        "environment.md": environment.render(),
        "cli.md": commands.render(),
        "metrics.md": metrics.render(),
        "problems.md": problems.render(),
        "http-api.md": http_api.render(openapi),
        "openapi.yaml": openapi,
    }


def differences(pages: dict[str, str], directory: Path) -> list[str]:
    """How `directory` differs from `pages`: a file missing, out of date, or there but not generated."""
    found = [
        f"{name} is out of date" if (directory / name).exists() else f"{name} is missing"
        for name, text in sorted(pages.items())
        if not (directory / name).exists() or (directory / name).read_text(encoding="utf-8") != text
    ]
    if directory.is_dir():
        found.extend(
            f"{path.name} is not generated (remove it)"
            for path in sorted(directory.iterdir())
            if path.name not in pages
        )
    return found


def write_pages(pages: dict[str, str], directory: Path) -> list[str]:
    """Write `pages` into `directory`; the names of the files that changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in pages.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    return changed
