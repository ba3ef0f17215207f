"""Placeholder until the reference client lands (issue 4)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Client arguments."""


def run(args: argparse.Namespace) -> int:
    """Run the client."""
    return 2
