"""Counters, gauges and histograms kept as plain Python numbers until scraped.

A backend records into these from its first request on, and prometheus_client is
imported only when something reads them (``Tallies.registry``: a scrape, a test):
importing it cost every backend ~30 ms of its cold start (its exposition pulls in
http.server and email), and its metrics take a lock on every update. The names, types,
labels and buckets are those the same prometheus_client metrics would expose, without
their ``_created`` series. Updates come from the event loop's thread; a scrape reads
from the exposition's thread, and only copies (``list(dict.items())`` is atomic).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

#: prometheus_client's default histogram buckets (5 ms to 10 s).
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)  # fmt: skip


class Source(Protocol):
    """Anything that renders metric families at scrape time."""

    def families(self) -> Iterator[Metric]: ...


class Tally:
    """One metric family: its name, help and label names, and its values by labels."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str] = ()
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)

    def _key(self, values: tuple[str, ...], named: dict[str, str]) -> tuple[str, ...]:
        """The label values in order; ValueError for the wrong names or count, as
        prometheus_client's ``labels`` raises."""
        if named:
            if values or set(named) != set(self.labelnames):
                raise ValueError(f"{self.name} takes the labels {self.labelnames}")
            return tuple(str(named[label]) for label in self.labelnames)
        if len(values) != len(self.labelnames) or not values:
            raise ValueError(f"{self.name} takes the labels {self.labelnames}")
        return tuple(str(value) for value in values)


class CounterValue:
    """A counter's value for one set of labels."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Counter(Tally):
    """A counter, labelled or not."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str] = ()
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self._values: dict[tuple[str, ...], CounterValue] = {}
        if not self.labelnames:
            self._values[()] = CounterValue()

    def labels(self, *values: str, **named: str) -> CounterValue:
        key = self._key(values, named)
        child = self._values.get(key)
        if child is None:
            child = self._values[key] = CounterValue()
        return child

    def inc(self, amount: float = 1.0) -> None:
        self._values[()].inc(amount)

    def families(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import CounterMetricFamily

        family = CounterMetricFamily(
            self.name, self.documentation, labels=self.labelnames
        )
        for key, child in list(self._values.items()):
            family.add_metric(key, child.value)
        yield family


class Gauge(Tally):
    """An unlabelled gauge: set, moved, or read from a function at scrape time."""

    def __init__(self, name: str, documentation: str) -> None:
        super().__init__(name, documentation)
        self.value = 0.0
        self._read: Callable[[], float] | None = None

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value

    def set_function(self, read: Callable[[], float]) -> None:
        self._read = read

    def families(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import GaugeMetricFamily

        value = self._read() if self._read is not None else self.value
        yield GaugeMetricFamily(self.name, self.documentation, value=value)


class HistogramValue:
    """A histogram's observations for one set of labels: a count per bucket, the
    ``+Inf`` one last, and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class Histogram(Tally):
    """A histogram, labelled or not, with fixed bucket bounds."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self.bounds = tuple(bound for bound in buckets if bound != math.inf)
        self._values: dict[tuple[str, ...], HistogramValue] = {}
        if not self.labelnames:
            self._values[()] = HistogramValue(self.bounds)

    def labels(self, *values: str, **named: str) -> HistogramValue:
        key = self._key(values, named)
        child = self._values.get(key)
        if child is None:
            child = self._values[key] = HistogramValue(self.bounds)
        return child

    def observe(self, value: float) -> None:
        self._values[()].observe(value)

    def families(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        family = HistogramMetricFamily(
            self.name, self.documentation, labels=self.labelnames
        )
        edges = [*map(floatToGoString, self.bounds), "+Inf"]
        for key, child in list(self._values.items()):
            counts, total = list(child.counts), child.sum
            cumulative, buckets = 0.0, []
            for edge, count in zip(edges, counts, strict=True):
                cumulative += count
                buckets.append((edge, cumulative))
            family.add_metric(key, buckets, total)
        yield family


class Tallies:
    """The metrics of one server, and its Prometheus registry once one is asked for."""

    def __init__(self) -> None:
        self._sources: list[Source] = []
        self._registry: CollectorRegistry | None = None

    def add(self, source: Source) -> None:
        self._sources.append(source)

    def counter(
        self, name: str, documentation: str, labelnames: Sequence[str] = ()
    ) -> Counter:
        counter = Counter(name, documentation, labelnames)
        self.add(counter)
        return counter

    def gauge(self, name: str, documentation: str) -> Gauge:
        gauge = Gauge(name, documentation)
        self.add(gauge)
        return gauge

    def histogram(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> Histogram:
        histogram = Histogram(name, documentation, labelnames, buckets)
        self.add(histogram)
        return histogram

    def families(self) -> Iterator[Metric]:
        for source in list(self._sources):
            yield from source.families()

    @property
    def registry(self) -> CollectorRegistry:
        """A prometheus_client registry that reads these metrics when collected
        (made, and prometheus_client imported, on first use)."""
        if self._registry is None:
            from beephost_core.exposition import registry_of

            self._registry = registry_of(self.families)
        return self._registry
