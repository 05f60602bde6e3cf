"""Prometheus series named like Resilience4j's Micrometer export, labelled by breaker `name`.

Like Resilience4j's metrics module, this binds to a breaker from outside (`track`); the breaker
knows nothing of it.

The hot path touches no prometheus_client object: a breaker only bumps plain counters in its
`CallStats`, and one collector per registry turns every breaker's state into samples when the
registry is scraped. So several breakers share the metric families by label, and creating
breakers never registers anything twice.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from service_kit.resilience.breaker import CircuitBreaker
from service_kit.resilience.state import State

PREFIX = "resilience4j_circuitbreaker_"


# state, calls_seconds, failure_rate, slow_call_rate, not_permitted_calls, buffered_calls,
# slow_calls
Families = tuple[
    GaugeMetricFamily,
    SummaryMetricFamily,
    GaugeMetricFamily,
    GaugeMetricFamily,
    CounterMetricFamily,
    GaugeMetricFamily,
    GaugeMetricFamily,
]


class BreakerCollector(Collector):
    """Reports all breakers registered with one `CollectorRegistry`."""

    def __init__(self) -> None:
        # A newer breaker with the same name replaces the older one, as in CircuitBreakerMonitor.
        self.breakers: weakref.WeakValueDictionary[str, CircuitBreaker] = (
            weakref.WeakValueDictionary()
        )

    def describe(self) -> Iterator[Metric]:
        # Lets the registry check our names against other collectors without collecting.
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        state, calls, failure_rate, slow_rate, not_permitted, buffered, slow_calls = families
        for breaker in list(self.breakers.values()):
            name = breaker.name
            current = breaker.state
            for each in State:
                state.add_metric([name, each.value], 1.0 if each is current else 0.0)
            stats = breaker.stats
            calls.add_metric([name, "successful"], stats.successful, stats.successful_seconds)
            calls.add_metric([name, "failed"], stats.failed, stats.failed_seconds)
            calls.add_metric([name, "ignored"], stats.ignored, stats.ignored_seconds)
            not_permitted.add_metric([name], stats.not_permitted)
            window = breaker.window
            window.expire()
            failure_rate.add_metric([name], window.failure_rate)
            slow_rate.add_metric([name], window.slow_call_rate)
            buffered.add_metric([name, "successful"], window.size - window.failed)
            buffered.add_metric([name, "failed"], window.failed)
            slow_calls.add_metric([name, "successful"], window.slow - window.slow_failed)
            slow_calls.add_metric([name, "failed"], window.slow_failed)
        return iter(families)

    @staticmethod
    def _families() -> Families:
        return (
            GaugeMetricFamily(
                PREFIX + "state", "1 for the breaker's current state", labels=["name", "state"]
            ),
            SummaryMetricFamily(
                PREFIX + "calls_seconds", "Duration of permitted calls", labels=["name", "kind"]
            ),
            GaugeMetricFamily(
                PREFIX + "failure_rate",
                "Failure rate in percent, -1 if too few calls",
                labels=["name"],
            ),
            GaugeMetricFamily(
                PREFIX + "slow_call_rate",
                "Slow call rate in percent, -1 if too few calls",
                labels=["name"],
            ),
            CounterMetricFamily(
                PREFIX + "not_permitted_calls", "Calls rejected by the breaker", labels=["name"]
            ),
            GaugeMetricFamily(
                PREFIX + "buffered_calls", "Calls in the sliding window", labels=["name", "kind"]
            ),
            GaugeMetricFamily(
                PREFIX + "slow_calls", "Slow calls in the sliding window", labels=["name", "kind"]
            ),
        )


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, BreakerCollector] = (
    weakref.WeakKeyDictionary()
)


def track(breaker: CircuitBreaker, registry: CollectorRegistry = REGISTRY) -> None:
    """Report `breaker` through `registry`, registering the shared collector on first use."""
    collector = _collectors.get(registry)
    if collector is None:
        collector = _collectors[registry] = BreakerCollector()
        registry.register(collector)
    collector.breakers[breaker.name] = breaker
