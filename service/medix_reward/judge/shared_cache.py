"""The second level of the verdict cache: Redis, shared by every replica and surviving restarts.

A cache, not a dependency. Every command has a short timeout; a failure is counted
(`medix_reward_shared_cache_errors_total`) and Redis is then skipped for `retry_s`, so a dead or slow Redis
costs each verdict nothing but a missed hit: scoring goes on with the in-process LRU and the judge.

Keys are a SHA-256 of what decides a verdict (judge model, prompt version, logprobs, the answers as the judge
saw them), so a key is small whatever the answers' length; each key carries the TTL. The memory bound is
Redis's own (`maxmemory` with `maxmemory-policy allkeys-lru`): a cache server evicts better than a client can.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING

from medix_reward.api.metrics import Metrics
from medix_reward.settings import CacheSettings

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

# Connections to Redis per process; verdicts beyond it wait (up to the timeout) for one.
_MAX_CONNECTIONS = 32


def verdict_key(prefix: str, key: tuple[str, ...]) -> str:
    return prefix + "verdict:" + hashlib.sha256(json.dumps(key).encode()).hexdigest()


class SharedVerdictCache:
    """GET/SET of verdicts (as JSON dicts) in Redis; `None` on a miss and on any failure."""

    def __init__(self, settings: CacheSettings, metrics: Metrics | None = None, client: Redis | None = None):
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.retry import Retry

        assert settings.redis_url is not None
        self.settings = settings
        self._metrics = metrics
        timeout = settings.timeout_s
        self._redis = client or Redis(
            connection_pool=BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=_MAX_CONNECTIONS, timeout=timeout,
                socket_timeout=timeout, socket_connect_timeout=timeout,
                # Once, at once, on a broken connection: after a Redis restart the pooled connections are dead.
                retry=Retry(NoBackoff(), 1), retry_on_error=[RedisConnectionError],
            )
        )  # fmt: skip
        self._skip_until = 0.0

    async def get(self, key: tuple[str, ...]) -> dict[str, object] | None:
        if self._skipping():
            self._count("skipped")
            return None
        try:
            raw = await self._redis.get(verdict_key(self.settings.key_prefix, key))
        except Exception as exc:
            self._failed("get", exc)
            return None
        value = _decoded(raw)
        self._count("hit" if value is not None else "miss")
        return value

    async def put(self, key: tuple[str, ...], value: dict[str, object]) -> None:
        if self._skipping():
            return
        try:
            name = verdict_key(self.settings.key_prefix, key)
            await self._redis.set(name, json.dumps(value), ex=self.settings.ttl_s)
        except Exception as exc:
            self._failed("set", exc)

    async def close(self) -> None:
        await self._redis.aclose()

    def _skipping(self) -> bool:
        return time.monotonic() < self._skip_until

    def _failed(self, op: str, exc: Exception) -> None:
        if self._metrics is not None:
            self._metrics.shared_cache_errors.labels(op).inc()
        if time.monotonic() >= self._skip_until:  # log once per outage window, not per verdict
            log.warning("shared cache %s failed (%s); skipping Redis for %g s", op, type(exc).__name__,
                        self.settings.retry_s)  # fmt: skip
        self._skip_until = time.monotonic() + self.settings.retry_s

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.shared_cache_lookups.labels(result).inc()


def _decoded(raw: bytes | None) -> dict[str, object] | None:
    """A stored verdict, or None for a miss or an entry this version cannot read (treated as a miss)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("yes"), bool) or not isinstance(value.get("reply"), str):
        return None
    p_yes = value.get("p_yes")
    return value if p_yes is None or isinstance(p_yes, float | int) else None
