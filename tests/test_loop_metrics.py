"""The request path's lock-free counters and histograms export exactly what prometheus_client's own would."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from service.loop_metrics import LoopCounter, LoopHistogram
from service.metrics import LATENCY_BUCKETS

_CREATED = re.compile(r"(_created\{[^}]*\}|_created) [0-9.e+]+")


def _same_text(ours: CollectorRegistry, theirs: CollectorRegistry) -> None:
    """Both expositions, byte for byte, but for the creation times (two clocks read at different moments)."""
    for render in (generate_latest, generate_openmetrics):
        assert _CREATED.sub(r"\1 T", render(ours).decode()) == _CREATED.sub(r"\1 T", render(theirs).decode())


def test_counters_labelled_and_not_match_prometheus_client() -> None:
    """Same HELP/TYPE, `_total` and `_created` samples, label order and values, for labelled and unlabelled
    counters, children made by position and by name; a negative amount is refused as theirs refuses it."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    a = LoopCounter("t_requests", "Requests.", ["route", "status"], registry=ours)
    b = Counter("t_requests", "Requests.", ["route", "status"], registry=theirs)
    for counter in (a, b):
        counter.labels("/v1/tokens", "201").inc()
        counter.labels(route="/v1/tokens", status="201").inc(2.5)
        counter.labels("/healthz", "200").inc()
    c = LoopCounter("t_replays", "Replays.", (), registry=ours)
    d = Counter("t_replays", "Replays.", registry=theirs)
    c.inc()
    d.inc()
    _same_text(ours, theirs)
    with pytest.raises(ValueError, match="non-negative"):
        a.labels("/x", "500").inc(-1)
    with pytest.raises(ValueError, match="labels are"):
        a.labels("/only-one")


def test_histograms_match_prometheus_client_with_exemplars_in_openmetrics() -> None:
    """Cumulative buckets (an observation on a bound counts in that bucket), `_count`, `_sum`, `_created`; the
    latest exemplar of each bucket goes out in OpenMetrics, none in the text format."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    a = LoopHistogram("t_seconds", "Latency.", ["route"], buckets=LATENCY_BUCKETS, registry=ours)
    b = Histogram("t_seconds", "Latency.", ["route"], buckets=LATENCY_BUCKETS, registry=theirs)
    observations = [
        (0.0004, None),
        (0.001, {"trace_id": "a1"}),
        (0.0031, None),
        (0.0031, {"trace_id": "b2"}),
        (42.0, None),
    ]
    for seconds, exemplar in observations:
        a.labels("/v1/tokens").observe(seconds, exemplar)
        b.labels("/v1/tokens").observe(seconds, exemplar)
    a.labels(route="/healthz").observe(0.2)
    b.labels(route="/healthz").observe(0.2)
    # Exemplar timestamps are read from two clocks too: align them before comparing.
    for bucket, theirs_bucket in zip(a.labels("/v1/tokens").exemplars, b.labels("/v1/tokens")._buckets, strict=True):
        exemplar = theirs_bucket.get_exemplar()
        assert (bucket is None) == (exemplar is None)
        if exemplar is not None:
            assert bucket is not None
            assert (bucket.labels, bucket.value) == (exemplar.labels, exemplar.value)
            theirs_bucket.set_exemplar(bucket)
    _same_text(ours, theirs)
