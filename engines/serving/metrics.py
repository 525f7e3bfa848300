"""The port server's Prometheus metrics, and the plain per-version tallies its analysis reads.

One CollectorRegistry per server (not the global one), exposed at GET /metrics as the text
format Prometheus scrapes; the prober reads the same. Children are cached per version so a
request costs a dict lookup and three observations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NO_VERSION = "none"  # the label of requests answered with no version loaded (503)


@dataclass
class Tally:
    """What the analysis loop cuts windows from: plain numbers, read on the event loop."""

    requests: int = 0
    errors: int = 0
    latency_s: float = 0.0


class VersionMetrics:
    __slots__ = ("requests", "errors", "latency", "in_flight", "tally")

    def __init__(self, requests: Any, errors: Any, latency: Any, in_flight: Any) -> None:
        self.requests, self.errors, self.latency, self.in_flight = requests, errors, latency, in_flight
        self.tally = Tally()

    def observe(self, seconds: float, failed: bool) -> None:
        self.requests.inc()
        self.latency.observe(seconds)
        t = self.tally
        t.requests += 1
        t.latency_s += seconds
        if failed:
            self.errors.inc()
            t.errors += 1


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes and friends
        self._requests = Counter("trainledger_requests", "Requests answered, per version", ["version"],
                                 registry=self.registry)  # fmt: skip
        self._errors = Counter("trainledger_request_errors", "Requests answered with a 5xx, per version",
                               ["version"], registry=self.registry)  # fmt: skip
        self._latency = Histogram("trainledger_request_duration_seconds", "Time to answer /predict, per version",
                                  ["version"], buckets=BUCKETS, registry=self.registry)  # fmt: skip
        self._in_flight = Gauge("trainledger_requests_in_flight", "Requests being answered, per version",
                                ["version"], registry=self.registry)  # fmt: skip
        self._children: dict[str, VersionMetrics] = {}

    def version(self, name: str) -> VersionMetrics:
        got = self._children.get(name)
        if got is None:
            got = self._children[name] = VersionMetrics(
                self._requests.labels(name), self._errors.labels(name), self._latency.labels(name),
                self._in_flight.labels(name))  # fmt: skip
        return got

    def tally(self, name: str) -> Tally:
        return self.version(name).tally

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
