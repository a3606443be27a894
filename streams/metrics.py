"""Prometheus metrics of the worker (served on TONEWATCH_WORKER_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "tonewatch_messages_total",
    "Records consumed from the source topics, by outcome "
    "(scored, duplicate, redelivered, dead_letter).",
    ["source", "outcome"],
)
DEAD_LETTERS = Counter(
    "tonewatch_dead_letters_total", "Records sent to the dead-letter topic.", ["source", "reason"]
)
ALERTS = Counter("tonewatch_alerts_total", "Alerts raised (new in Postgres).", ["kind"])
BATCH_SECONDS = Histogram("tonewatch_batch_seconds", "Time to process one micro-batch.", ["source"])
BATCH_SIZE = Histogram(
    "tonewatch_batch_size", "Records per micro-batch.", ["source"], buckets=(1, 2, 4, 8, 16, 32, 64)
)
WAITED = Counter(
    "tonewatch_dependency_wait_seconds_total",
    "Time spent waiting for a dependency that was down (backpressure).",
    ["dependency"],
)
CACHE_STALE = Gauge("tonewatch_cache_stale", "1 while Redis missed alerts that Postgres has.")
