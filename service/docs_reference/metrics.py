"""docs/reference/metrics.md: every metric `service.metrics.Metrics()` registers, read back from its registry."""

from __future__ import annotations

from service.docs_reference.markdown import anchor, cell, code, name, page, table
from service.metrics import Metrics

# The series a family of each type is scraped as (prometheus_client's, and loop_metrics.py's, exposition): one name,
# or a histogram's three.
_SCRAPED = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "info": ("_info",),
}


def render() -> str:
    """The metrics reference page."""
    metrics = Metrics()
    # prometheus_client has no public way to ask a metric its label names before a child exists, so they are read
    # from the metric objects Metrics holds (prometheus_client's and loop_metrics.py's both keep `_labelnames`).
    declared = {
        getattr(metric, "_name", None): tuple(getattr(metric, "_labelnames", ()))
        for metric in vars(metrics).values()
        if hasattr(metric, "_labelnames")
    }
    rows = []
    for family in sorted(metrics.registry.collect(), key=lambda f: f.name):
        labels = declared.get(family.name) or tuple(dict.fromkeys(k for s in family.samples for k in s.labels))
        suffixes = _SCRAPED[family.type]
        scraped = family.name + suffixes[0] if len(suffixes) == 1 else family.name
        also = "" if len(suffixes) == 1 else "<br>" + ", ".join(code(s) for s in suffixes)
        rows.append(
            [
                "".join(anchor(n) for n in dict.fromkeys([family.name, scraped])) + name(scraped) + also,
                family.type,
                ", ".join(code(label) for label in labels) or "—",
                cell(family.documentation),
            ]
        )
    return page(
        "Metrics",
        ["service/metrics.py"],
        "Everything `GET /metrics` exports (Prometheus text format; OpenMetrics, with trace exemplars on the latency "
        "histograms, when the scraper asks for `application/openmetrics-text`). Counters and histograms also export "
        "a `_created` series. Label values are bounded: routes are templates, reasons are problem slugs, profiles "
        "come from the configuration; never a subject, tenant or token, and an API key only as its fingerprint.",
        [table(["series", "type", "labels", "meaning"], rows)],
    )
