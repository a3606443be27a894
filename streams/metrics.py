"""Prometheus metrics of the worker (served on TONEWATCH_WORKER_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Enum, Gauge, Histogram

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
RETRIES = Counter(
    "tonewatch_retries_total",
    "Retries of an operation whose dependency failed (Postgres, Kafka, Triton), by operation.",
    ["operation"],
)
TRITON_RETRIES = Counter(
    "tonewatch_triton_call_retries_total", "Retries of single Triton calls inside the client."
)
BREAKER = Enum(
    "tonewatch_breaker_state",
    "State of the circuit breaker in front of a dependency.",
    ["dependency"],
    states=["closed", "half_open", "open"],
)
IN_FLIGHT = Gauge("tonewatch_triton_in_flight", "Triton calls in flight now.")
IN_FLIGHT_PEAK = Gauge(
    "tonewatch_triton_in_flight_peak", "Most Triton calls ever in flight at once."
)
MODEL_VERSION = Gauge(
    "tonewatch_model_version", "Version of the model that scored the latest batch.", ["model"]
)
LAG = Gauge(
    "tonewatch_consumer_lag",
    "Records of an assigned source partition not yet committed.",
    ["topic", "partition"],
)
STALLS = Counter(
    "tonewatch_stalls_total",
    "Partitions found with lag but no progress, and restarted from their committed offset.",
    ["topic"],
)
