"""Prometheus metrics, one registry per app (no global state for tests to reset).

Names follow Prometheus guidance: one prefix, base units, `_seconds`, `_total` on counters. Queue time
and inference time of the embedder are separate, as are the stages of a request.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "medix_reward"
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_SCORES = (0.0, 0.25, 0.5, 0.75, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            f"{PREFIX}_request_duration_seconds", "HTTP request latency", ["route"], buckets=_LATENCY, registry=r
        )
        self.cancelled = Counter(f"{PREFIX}_requests_cancelled", "Requests whose client went away", registry=r)
        self.stage_seconds = Histogram(
            f"{PREFIX}_stage_duration_seconds",
            "Time per request stage (checks, judge, embed)",
            ["stage"],
            buckets=_LATENCY,
            registry=r,
        )
        self.items = Counter(f"{PREFIX}_items_scored", "Items scored", registry=r)
        self.inflight_items = Gauge(f"{PREFIX}_inflight_items", "Items being scored now", registry=r)
        self.component_score = Histogram(
            f"{PREFIX}_component_score", "Distribution of component scores", ["component"], buckets=_SCORES, registry=r
        )
        self.unscored = Counter(
            f"{PREFIX}_unscored_components", "Components that could not be scored", ["component", "code"], registry=r
        )
        self.judge_calls = Counter(
            f"{PREFIX}_judge_calls", "Judge HTTP attempts by outcome (ok or an error code)", ["outcome"], registry=r
        )
        self.judge_retries = Counter(f"{PREFIX}_judge_retries", "Judge attempts after the first", registry=r)
        self.judge_cache = Counter(f"{PREFIX}_judge_cache_lookups", "Verdict lookups", ["result"], registry=r)
        self.embed_cache = Counter(f"{PREFIX}_embed_cache_lookups", "Embedding lookups", ["result"], registry=r)
        self.embed_batch_size = Histogram(
            f"{PREFIX}_embed_batch_size",
            "Texts per encoder micro-batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.embed_queue_seconds = Histogram(
            f"{PREFIX}_embed_queue_seconds",
            "Time a text waits before its batch is encoded",
            buckets=_LATENCY,
            registry=r,
        )
        self.embed_inference_seconds = Histogram(
            f"{PREFIX}_embed_inference_seconds", "Encoder time per micro-batch", buckets=_LATENCY, registry=r
        )
        self.embed_queue_depth = Gauge(f"{PREFIX}_embed_queue_depth", "Texts waiting for the encoder", registry=r)
        self.judge_limit = Gauge(
            f"{PREFIX}_judge_limit", "Adaptive limit on judge calls in flight, per replica", ["replica"], registry=r
        )
        self.judge_waiting = Gauge(
            f"{PREFIX}_judge_waiting", "Judge calls waiting for the replica's limit", ["replica"], registry=r
        )
        self.judge_breaker = Gauge(
            f"{PREFIX}_judge_breaker_state",
            "Circuit breaker of each judge replica: 0 closed (used), 1 half-open (probe answered), 2 open (down)",
            ["replica"],
            registry=r,
        )
        self.judge_breaker_opened = Gauge(
            f"{PREFIX}_judge_breaker_opened", "Times each judge replica's breaker has opened", ["replica"], registry=r
        )
        self.cache_bytes = Gauge(f"{PREFIX}_cache_bytes", "Approximate memory held by a cache", ["cache"], registry=r)
        self.fallbacks = Counter(
            f"{PREFIX}_fallbacks", "Unscored items given the configured fallback value", ["route"], registry=r
        )
        self.shared_cache_lookups = Counter(
            f"{PREFIX}_shared_cache_lookups",
            "Shared (Redis) verdict lookups: hit, miss, or skipped while Redis is failing",
            ["result"],
            registry=r,
        )
        self.shared_cache_errors = Counter(
            f"{PREFIX}_shared_cache_errors",
            "Shared (Redis) cache commands that failed or timed out",
            ["op"],
            registry=r,
        )
