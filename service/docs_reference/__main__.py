"""`python -m service.docs_reference [--check] [--out DIR]`: write (or check) the generated reference pages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from service.docs_reference import REFERENCE, differences, render_pages, write_pages


def main(argv: list[str] | None = None) -> int:
    """Write the pages into docs/reference/ (or --out); with --check, write nothing and fail on any difference."""
    parser = argparse.ArgumentParser(prog="python -m service.docs_reference", description=__doc__)
    parser.add_argument("--out", type=Path, default=REFERENCE, help="where to write (default: docs/reference/)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if a page is out of date")
    args = parser.parse_args(argv)
    pages = render_pages()
    if args.check:
        found = differences(pages, args.out)
        for problem in found:
            print(f"{args.out}/{problem}", file=sys.stderr)
        if found:
            print("regenerate them: make docs-reference", file=sys.stderr)
        return 1 if found else 0
    changed = write_pages(pages, args.out)
    print(f"{args.out}: {len(pages)} files, {len(changed)} changed{': ' if changed else ''}{', '.join(changed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
