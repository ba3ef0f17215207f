"""The JavaScript in the READMEs is the browser example's own code, region for region.

A source region runs from `// snippet: NAME` to `// /snippet` in examples/browser/src/*.ts; a README shows it,
dedented, as a fenced block between `<!-- snippet: NAME -->` and `<!-- /snippet -->`.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from tests.frontend.conftest import EXAMPLE_DIR
from tests.support.processes import ROOT

SOURCE_REGION = re.compile(r"^[ \t]*// snippet: (?P<name>[\w-]+)\n(?P<body>.*?)^[ \t]*// /snippet\n", re.S | re.M)
README_REGION = re.compile(
    r"^<!-- snippet: (?P<name>[\w-]+) -->\n```(?:ts|typescript)\n(?P<body>.*?)^```\n<!-- /snippet -->$", re.S | re.M
)
REQUIRED = ("web-token", "web-connect")


def source_regions() -> dict[str, str]:
    """Every marked region of the example's sources, dedented."""
    regions: dict[str, str] = {}
    for path in sorted((EXAMPLE_DIR / "src").glob("*.ts")):
        for match in SOURCE_REGION.finditer(path.read_text()):
            assert match["name"] not in regions, f"snippet {match['name']} is marked twice"
            regions[match["name"]] = textwrap.dedent(match["body"])
    return regions


def readme_regions(readme: Path) -> dict[str, str]:
    """Every snippet a README shows."""
    return {m["name"]: m["body"] for m in README_REGION.finditer(readme.read_text())}


def check_readme(readme: Path) -> None:
    sources = source_regions()
    shown = readme_regions(readme)
    for name in REQUIRED:
        assert name in shown, (
            f"{readme.relative_to(ROOT)} lacks the {name} snippet: paste, between <!-- snippet: {name} --> and "
            f"<!-- /snippet -->, a ```ts block with the region marked `// snippet: {name}` in examples/browser/src"
        )
    for name, body in shown.items():
        assert name in sources, f"{readme.relative_to(ROOT)} shows snippet {name}, which no source file marks"
        assert body == sources[name], f"{readme.relative_to(ROOT)}'s {name} snippet differs from the source"


def test_example_sources_mark_the_snippets() -> None:
    """The token request and the connect call are marked in the example's sources."""
    assert set(REQUIRED) <= set(source_regions())


def test_main_readme_shows_the_examples_own_code() -> None:
    """README.md's "From a web app" snippets equal the example's marked code."""
    check_readme(ROOT / "README.md")


def test_example_readme_shows_the_examples_own_code() -> None:
    """examples/browser/README.md's snippets equal the example's marked code."""
    check_readme(EXAMPLE_DIR / "README.md")


def test_the_frontend_guide_shows_the_examples_own_code() -> None:
    """docs/frontend.md's snippets equal the example's marked code."""
    check_readme(ROOT / "docs" / "frontend.md")
