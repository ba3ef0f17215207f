"""docs/reference/problems.md: every problem type, from the `LivetokenError` subclasses the service defines."""

from __future__ import annotations

import importlib

from service.docs_reference.markdown import anchor, cell, code, page, table
from service.errors import PROBLEM_BASE, LivetokenError


def problem_classes() -> list[type[LivetokenError]]:
    """LivetokenError and every subclass of it, once the app (which imports every layer that raises) is loaded."""
    importlib.import_module("service.app")
    found: list[type[LivetokenError]] = []
    pending: list[type[LivetokenError]] = [LivetokenError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def render() -> str:
    """The problem types reference page."""
    rows = []
    for cls in sorted(problem_classes(), key=lambda c: (_status(c) or 499, c.slug)):
        doc = cls.__dict__.get("__doc__") if cls is not LivetokenError else None  # the base's says what a class is
        when = f"{doc.strip()} " if doc else ""
        rows.append(
            [
                str(_status(cls) or "4xx"),
                anchor(cls.slug) + code(cls.slug),
                cell(cls.title),
                cell(f"{when}Detail: “{cls.default_detail}”"),
            ]
        )
    return page(
        "Problem types",
        ["service/errors.py"],
        "Every refusal is an RFC 9457 `application/problem+json` body whose `type` is "
        f"`{PROBLEM_BASE}<slug>`, with `title`, `status`, `detail` and the `request_id` of the request. The slug is "
        "stable: match on it, not on the text. Each refusal is counted in "
        "[`livetoken_rejections_total`](metrics.md#livetoken_rejections_total) with `reason` = the slug.",
        [table(["status", "type", "title", "when"], rows)],
    )


def _status(cls: type[LivetokenError]) -> int | None:
    """The class's status; None for one that takes it per instance (the framework's own 4xx answers)."""
    owner = next(c for c in cls.__mro__ if "status" in c.__dict__)
    return None if owner is LivetokenError and cls is not LivetokenError else cls.status
