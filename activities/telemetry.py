"""The Temporal SDK's metrics, merged into this process's Prometheus registry.

The SDK (its Rust core) records its own metrics (polls, task latencies, requests, …)
and the custom metrics that workflow and activity code emit through
``workflow.metric_meter()``. Rather than the SDK's own Prometheus server on a second
port, its updates go to a :class:`temporalio.runtime.MetricBuffer`; a collector drains it
(at every scrape, and every second in the background so the buffer never fills) and
exposes the totals beside the process's ``prometheus_client`` metrics, so API and worker
each have one ``/metrics``. Counters get the ``_total`` suffix; durations are seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import REGISTRY, Metric
from prometheus_client.registry import Collector
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    MetricBuffer,
    MetricBufferDurationFormat,
    Runtime,
    TelemetryConfig,
)

BUFFER_SIZE = 100_000
DRAIN_SECONDS = 1.0
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)
"""Histogram buckets (seconds) of the SDK's duration metrics and of the workflow's."""

_Labels = tuple[tuple[str, str], ...]


class _Series:
    __slots__ = ("buckets", "count", "total", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * len(BUCKETS)


class SdkMetrics(Collector):
    """A Temporal :class:`Runtime` whose metrics this collector exposes."""

    def __init__(self) -> None:
        self.buffer = MetricBuffer(BUFFER_SIZE, MetricBufferDurationFormat.SECONDS)
        self.runtime = Runtime(
            telemetry=TelemetryConfig(metrics=self.buffer, attach_service_name=False)
        )
        self._lock = threading.Lock()
        self._families: dict[str, tuple[str, str, dict[_Labels, _Series]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain_loop, name="tempoflow-sdk-metrics")
        self._thread.daemon = True
        self._thread.start()

    def _drain_loop(self) -> None:
        while not self._stop.wait(DRAIN_SECONDS):
            self.drain()

    def drain(self) -> None:
        """Fold the buffered updates into the totals."""
        with self._lock:
            for update in self.buffer.retrieve_updates():
                metric = update.metric
                kind = metric.kind
                family = self._families.get(metric.name)
                if family is None:
                    typ = (
                        "counter"
                        if kind == BUFFERED_METRIC_KIND_COUNTER
                        else "gauge"
                        if kind == BUFFERED_METRIC_KIND_GAUGE
                        else "histogram"
                    )
                    family = (typ, metric.description or metric.name, {})
                    self._families[metric.name] = family
                key = _labels(update.attributes)
                series = family[2].get(key)
                if series is None:
                    series = family[2][key] = _Series()
                value = float(update.value)
                if family[0] == "counter":
                    series.value += value
                elif family[0] == "gauge":
                    series.value = value
                else:
                    series.count += 1
                    series.total += value
                    for i, bound in enumerate(BUCKETS):
                        if value <= bound:
                            series.buckets[i] += 1
                            break

    def collect(self) -> Iterator[Metric]:
        self.drain()
        with self._lock:
            for name, (typ, doc, all_series) in sorted(self._families.items()):
                family = Metric(name, doc, typ)
                total = name if name.endswith("_total") else name + "_total"
                for key, series in all_series.items():
                    labels = dict(key)
                    if typ == "counter":
                        family.add_sample(total, labels, series.value)
                    elif typ == "gauge":
                        family.add_sample(name, labels, series.value)
                    else:
                        cumulative = 0
                        for bound, hits in zip(BUCKETS, series.buckets, strict=True):
                            cumulative += hits
                            family.add_sample(
                                name + "_bucket", {**labels, "le": _le(bound)}, cumulative
                            )
                        family.add_sample(
                            name + "_bucket", {**labels, "le": "+Inf"}, float(series.count)
                        )
                        family.add_sample(name + "_count", labels, float(series.count))
                        family.add_sample(name + "_sum", labels, series.total)
                yield family


def _labels(attributes: Mapping[str, Any]) -> _Labels:
    return tuple(sorted((k, str(v)) for k, v in attributes.items()))


def _le(bound: float) -> str:
    return repr(float(bound))


_lock = threading.Lock()
_instance: SdkMetrics | None = None


def sdk_metrics() -> SdkMetrics:
    """The process's Temporal runtime with buffered metrics, registered with the default
    Prometheus registry on first use (one per process: a Runtime owns threads)."""
    global _instance
    with _lock:
        if _instance is None:
            _instance = SdkMetrics()
            REGISTRY.register(_instance)
        return _instance
