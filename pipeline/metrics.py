"""Self-metrics of a worker, exposed at ``/metrics`` in Prometheus text format.

One ``Metrics`` object per app with its own registry (so tests and several apps
in one process do not collide). Consumer lag is computed when scraped.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Counters and histograms of the pipeline; names are ``tokenpipe_*``."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.events_in = Counter("tokenpipe_events_in", "Usage events read", registry=r)
        self.events_costed = Counter("tokenpipe_events_costed", "Events priced", registry=r)
        self.events_rejected = Counter(
            "tokenpipe_events_rejected", "Events sent to the DLQ", ["reason"], registry=r
        )
        self.events_unpriced = Counter(
            "tokenpipe_events_unpriced", "Events with no known price", registry=r
        )
        self.events_duplicate = Counter(
            "tokenpipe_events_duplicate", "Duplicate event_ids dropped", ["stage"], registry=r
        )
        self.ingest_requests = Counter(
            "tokenpipe_ingest_requests", "HTTP ingest requests", ["status"], registry=r
        )
        self.sink_rows = Counter("tokenpipe_sink_rows", "Rows inserted into ClickHouse", registry=r)
        self.sink_failures = Counter(
            "tokenpipe_sink_insert_failures", "Failed ClickHouse insert attempts", registry=r
        )
        self.sink_insert_seconds = Histogram(
            "tokenpipe_sink_insert_seconds",
            "Batch write latency (dedup check + insert), successful batches",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.sink_batch_rows = Histogram(
            "tokenpipe_sink_batch_rows",
            "Rows per sink batch",
            buckets=(1, 10, 100, 1000, 5000, 10000, 50000),
            registry=r,
        )
        self.consumer_lag = Gauge(
            "tokenpipe_consumer_lag",
            "Messages behind the high-water mark",
            ["topic", "partition"],
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
