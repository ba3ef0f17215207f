"""Counters and histograms for the request path, exported exactly as prometheus_client's own.

prometheus_client's metrics take a lock and make five or six Python calls per `inc()` or `observe()`, so that
any thread may count. Every count on the request path happens on the event loop's one thread, so these keep
plain numbers and build the same samples (`_total`, `_created`, buckets with exemplars, `_sum`, `_count`) when
the registry is scraped: a 401 counts three times and a token six, at a fifth of the cost each. Anything
counted from another thread stays a prometheus_client metric.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString


class _Family:
    """Label handling shared by both kinds."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self._name = name
        self._doc = documentation
        self._labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], object] = {}
        if not self._labelnames:
            self._children[()] = self._new_child()  # an unlabelled metric is exported (at 0) from the start
        registry.register(self)

    def _new_child(self) -> object:
        raise NotImplementedError

    def _values(self, values: tuple[str, ...], named: dict[str, str]) -> tuple[str, ...]:
        if named:
            if values or set(named) != set(self._labelnames):
                raise ValueError(f"{self._name}: labels are {self._labelnames}")
            values = tuple(named[n] for n in self._labelnames)
        if len(values) != len(self._labelnames):
            raise ValueError(f"{self._name}: labels are {self._labelnames}")
        return tuple(str(v) for v in values)

    def describe(self) -> Iterator[Metric]:
        """What the registry checks names against when the metric registers."""
        yield from self.collect()

    def collect(self) -> Iterator[Metric]:
        raise NotImplementedError


class CounterChild:
    """One label set's count."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        """Add `amount` (never negative: a counter)."""
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount


class LoopCounter(_Family):
    """A prometheus_client Counter for the event loop's thread: `labels(...).inc()` and, unlabelled, `inc()`."""

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def labels(self, *values: str, **named: str) -> CounterChild:
        """The child for one label set (made on first use)."""
        key = self._values(values, named)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = CounterChild()
        return child  # type: ignore[return-value]  # every child of a LoopCounter is a CounterChild

    def inc(self, amount: float = 1.0) -> None:
        """Count an unlabelled counter."""
        self.labels().inc(amount)

    def collect(self) -> Iterator[Metric]:
        """The family as prometheus_client's Counter exports it."""
        family = CounterMetricFamily(self._name, self._doc, labels=self._labelnames)
        for values, child in list(self._children.items()):
            assert isinstance(child, CounterChild)  # noqa: S101 - the only kind this family makes
            family.add_metric(values, child.value, created=child.created)
        yield family


class HistogramChild:
    """One label set's buckets (not cumulative until scraped), sum and last exemplar per bucket."""

    __slots__ = ("_bounds", "counts", "created", "exemplars", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * len(bounds)
        self.exemplars: list[Exemplar | None] = [None] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        """One observation (seconds), with the trace it belongs to when there is one."""
        i = bisect_left(self._bounds, amount)
        self.counts[i] += 1
        self.sum += amount
        if exemplar:
            self.exemplars[i] = Exemplar(exemplar, amount, time.time())


class LoopHistogram(_Family):
    """A prometheus_client Histogram for the event loop's thread: `labels(...).observe(seconds, exemplar)`."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self._bounds = (*sorted(float(b) for b in buckets), math.inf)
        super().__init__(name, documentation, labelnames, registry)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self._bounds)

    def labels(self, *values: str, **named: str) -> HistogramChild:
        """The child for one label set (made on first use)."""
        key = self._values(values, named)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = HistogramChild(self._bounds)
        return child  # type: ignore[return-value]  # every child of a LoopHistogram is a HistogramChild

    def collect(self) -> Iterator[Metric]:
        """The family as prometheus_client's Histogram exports it: cumulative buckets, `_count`, `_sum`,
        `_created`; exemplars go out in OpenMetrics scrapes."""
        family = HistogramMetricFamily(self._name, self._doc, labels=self._labelnames)
        for values, child in list(self._children.items()):
            assert isinstance(child, HistogramChild)  # noqa: S101 - the only kind this family makes
            running = 0
            buckets: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
            for bound, count, exemplar in zip(self._bounds, child.counts, child.exemplars, strict=True):
                running += count
                le = floatToGoString(bound)  # type: ignore[no-untyped-call]  # prometheus_client leaves it untyped
                buckets.append((le, float(running), exemplar) if exemplar is not None else (le, float(running)))
            family.add_metric(values, buckets, child.sum)
            family.samples.append(
                Sample(self._name + "_created", dict(zip(self._labelnames, values, strict=True)), child.created)
            )
        yield family
