"""The documentation site cannot rot: the reference pages equal what the code generates, the site builds with every
link and anchor checked, and the README's links lead to files that exist."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import environment as config_environment
from service.docs_reference import REFERENCE, configuration, differences, render_pages
from service.docs_reference.__main__ import main as generate
from service.tracing import environment as tracing_environment

ROOT = Path(__file__).resolve().parents[2]
SERVICE_SOURCES = sorted((ROOT / "service").rglob("*.py"))
# [text](target) and ![alt](target), with an optional "title"; reference definitions: [name]: target
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def test_reference_pages_equal_what_the_code_generates(tmp_path: Path) -> None:
    """docs/reference/ is exactly what `make docs-reference` writes today: a new config key, variable, command,
    metric, problem type or endpoint without regenerated pages fails here."""
    assert generate(["--out", str(tmp_path)]) == 0
    pages = {path.name: path.read_text(encoding="utf-8") for path in tmp_path.iterdir()}
    drift = differences(pages, REFERENCE)
    assert not drift, f"docs/reference/ is out of date ({'; '.join(drift)}): run `make docs-reference`"


def test_the_check_mode_reports_drift_without_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m service.docs_reference --check` fails on a stale page and says how to fix it, writing nothing."""
    (tmp_path / "cli.md").write_text("# stale\n")
    assert generate(["--check", "--out", str(tmp_path)]) == 1
    assert "cli.md is out of date" in capsys.readouterr().err
    assert (tmp_path / "cli.md").read_text() == "# stale\n"


def test_a_config_field_without_a_docstring_stops_the_generator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every field of the configuration model explains itself: the generator refuses a field with no docstring,
    naming it, instead of writing a reference row without a meaning."""
    source = configuration.SOURCE.read_text(encoding="utf-8")
    field = "    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 8080\n"
    assert field + '    """' in source
    undocumented = source.replace(field + '    """', field + '    _ = """')  # a plain assignment, not a docstring
    copy = tmp_path / "model.py"
    copy.write_text(undocumented)
    monkeypatch.setattr(configuration, "SOURCE", copy)
    monkeypatch.setattr(configuration, "_relative", lambda path: path.name)
    with pytest.raises(configuration.UndocumentedFieldError, match=r"ServerConfig\.port has no docstring"):
        configuration.render()


def test_every_environment_variable_the_service_names_is_in_a_registry() -> None:
    """Each LIVETOKEN_*, OTEL_* and proxy variable named in service/ has a registry entry (so a reference row), and
    each entry names a variable the code really uses."""
    registered = {name for name, _ in (*config_environment.VARIABLES, *tracing_environment.VARIABLES)}
    named: set[str] = set()
    for path in SERVICE_SOURCES:
        if "docs_reference" not in path.parts:
            text = path.read_text(encoding="utf-8")
            named |= set(re.findall(r"\b(?:LIVETOKEN|OTEL)_[A-Z0-9_]*[A-Z0-9]\b", text))
            named |= {m.upper() for m in re.findall(r"\b(?:https?|no)_proxy\b", text, re.IGNORECASE)}
    assert named - registered == set(), "add them to VARIABLES in service/config/ or service/tracing/environment.py"
    everything = "\n".join(p.read_text(encoding="utf-8") for p in SERVICE_SOURCES if "docs_reference" not in p.parts)
    used = {name for name in registered if name.removesuffix("_FILE").lower() in everything.lower()}
    assert registered - used == set(), "registered variables that nothing in service/ reads"


def test_every_problem_type_the_service_defines_is_documented() -> None:
    """Every `slug` a class in service/ declares (wherever it lives) has a row in the problem types page."""
    slugs: set[str] = set()
    for path in SERVICE_SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                slugs |= _slugs_in(node)
    page = render_pages()["problems.md"]
    assert len(slugs) > 20
    assert {s for s in slugs if f'<a id="{s}"></a>`{s}`' not in page} == set()


def _slugs_in(cls: ast.ClassDef) -> set[str]:
    found: set[str] = set()
    for statement in cls.body:
        pairs: list[tuple[ast.expr, ast.expr | None]]
        if isinstance(statement, ast.AnnAssign):
            pairs = [(statement.target, statement.value)]
        elif isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Tuple):
            targets = statement.targets[0].elts if isinstance(statement.targets[0], ast.Tuple) else []
            pairs = list(zip(targets, statement.value.elts, strict=False))
        elif isinstance(statement, ast.Assign):
            pairs = [(target, statement.value) for target in statement.targets]
        else:
            continue
        for target, value in pairs:
            if isinstance(target, ast.Name) and target.id == "slug" and isinstance(value, ast.Constant):
                found.add(str(value.value))
    return found


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict` passes: every page is in the nav, and every link and anchor between pages (the
    hand-written ones and the generated reference) resolves."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "configuration" / "index.html").is_file()
    assert (tmp_path / "site" / "reference" / "openapi.yaml").is_file()


def test_readme_links_lead_to_files_that_exist() -> None:
    """Every relative link in README.md (into docs/, examples/, the repository's files) names a file or folder that
    exists; links inside code blocks are examples, not links."""
    text = _FENCE.sub("", (ROOT / "README.md").read_text(encoding="utf-8"))
    targets = [inline or definition for inline, definition in _LINK.findall(text)]
    relative = [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#|//)", t, re.IGNORECASE)]
    assert relative, "README.md links into docs/"
    missing = [t for t in relative if not (ROOT / t.split("#", 1)[0].split("?", 1)[0]).exists()]
    assert missing == []
