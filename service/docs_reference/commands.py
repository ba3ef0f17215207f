"""docs/reference/cli.md: `livetoken --help` and the `--help` of every subcommand, found in the CLI's own parser."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from service.cli import build_parser
from service.docs_reference.markdown import page

WIDTH = 110  # the help is wrapped at a fixed width, so the page does not depend on the terminal that made it


class _FixedWidthFormatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=WIDTH, max_help_position=32)


def render() -> str:
    """The CLI reference page."""
    sections = []
    for parser in _parsers(build_parser()):
        parser.formatter_class = _FixedWidthFormatter
        fence = "```text\n" + parser.format_help().rstrip() + "\n```"
        title = parser.prog if parser.prog == "livetoken" else parser.prog.removeprefix("livetoken ")
        sections.append(f'## `{title}` {{ id="{title.replace(" ", "-")}" }}\n\n{fence}')
    return page(
        "Command line",
        ["service/cli.py"],
        "`livetoken` is the one entry point: the service, its emulator, the reference client and the operator's "
        "commands. Each section is that command's `--help`.",
        sections,
    )


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """`parser` and, depth first in the order they were added, every subcommand's parser under it."""
    yield parser
    for action in parser._actions:  # argparse offers no public way to list a parser's subcommands
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # an alias maps to the same parser
                yield from _parsers(sub)
