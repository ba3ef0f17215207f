"""Reading a trace the way a person reads it in a tracing UI: a tree of named spans."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

TRACEPARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT_PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACEPARENT_TRACE}-{TRACEPARENT_PARENT}-01"


def hex_trace(span: ReadableSpan) -> str:
    """The span's trace id as W3C writes it."""
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def hex_span(span: ReadableSpan) -> str:
    """The span's id as W3C writes it."""
    assert span.context is not None
    return format(span.context.span_id, "016x")


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    """The direct children of `parent`, in start order."""
    assert parent.context is not None
    found = [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]
    return sorted(found, key=lambda s: s.start_time or 0)


def only(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    """The one span called `name`."""
    named = [s for s in spans if s.name == name]
    assert len(named) == 1, f"{len(named)} spans named {name!r}: {[s.name for s in spans]}"
    return named[0]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    """The span's attributes as a plain dict."""
    return dict(span.attributes or {})


def render_tree(spans: Sequence[ReadableSpan]) -> str:
    """The trace as indented text: name, kind, duration and attributes (what the README shows)."""
    ids = {s.context.span_id for s in spans if s.context is not None}
    roots = [s for s in spans if s.parent is None or s.parent.span_id not in ids]
    lines: list[str] = []

    def walk(span: ReadableSpan, depth: int) -> None:
        shown = ", ".join(f"{k}={v}" for k, v in attrs(span).items())
        took = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
        lines.append(f"{'  ' * depth}{span.name} [{span.kind.name.lower()}] {took:.2f} ms  {shown}".rstrip())
        for child in children(spans, span):
            walk(child, depth + 1)

    for root in sorted(roots, key=lambda s: s.start_time or 0):
        walk(root, 0)
    return "\n".join(lines)
