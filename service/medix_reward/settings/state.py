"""What the service keeps across requests: the shared verdict cache (Redis) and the telemetry window and groups."""

from __future__ import annotations

from pydantic import Field, field_validator

from medix_reward.settings.group import _Group


class CacheSettings(_Group):
    """A verdict cache shared by replicas and restarts (Redis), behind each process's own LRU. A cache, not a
    dependency: with Redis down the service scores on its local cache and counts the failures."""

    redis_url: str | None = Field(
        default=None, description="e.g. redis://cache:6379/0; unset: no shared cache, only the in-process LRU."
    )
    ttl_s: int = Field(
        default=7 * 24 * 3600,
        ge=1,
        description="Lifetime of a shared verdict; the memory bound is Redis's own "
        "maxmemory with maxmemory-policy allkeys-lru (deploy/ sets it).",
    )
    key_prefix: str = Field(default="medix-reward:", description="Keys are this + 'verdict:' + a SHA-256.")
    timeout_s: float = Field(default=0.25, gt=0, description="Per Redis command; slower counts as a failure.")
    retry_s: float = Field(
        default=2.0, ge=0, description="After a failure Redis is skipped this long, so a dead Redis costs no waits."
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"cache.redis_url must start with redis://, rediss:// or unix://: {url!r}")
        return url


class TelemetrySettings(_Group):
    """What the reward sees over time: rolling rates, the refusal alarm, and group statistics across requests."""

    window_s: float = Field(default=300.0, gt=0, description="The rolling window of the rates in /stats and /metrics.")
    refusal_alert_ratio: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="A preset's share of refused items over the window above which the service logs a warning and "
        "sets medix_reward_refusal_alarm; exported as medix_reward_refusal_alert_ratio for the alerting rules.",
    )
    min_items: int = Field(default=50, ge=1, description="Fewer items in a preset's window raise no alarm.")
    disagree_below: float | None = Field(
        default=None,
        ge=-1,
        le=1,
        description="A judge YES with an embedding similarity below this counts as the signals disagreeing; "
        "default: the request's embed_threshold.",
    )
    group_window_s: float = Field(
        default=600.0, gt=0, description="How long a group gathers members across requests after its first one."
    )
    group_size: int | None = Field(
        default=None,
        ge=1,
        description="The size of groups that declare none (e.g. the trainer's samples per prompt, for the OpenRLHF "
        "and slime routes); None: such groups close when their window ends.",
    )
    max_open_groups: int = Field(
        default=65_536,
        ge=1,
        description="Groups gathering at once (O(1) memory each); beyond it the oldest is closed (evicted).",
    )
    recent_groups: int = Field(default=100, ge=0, description="Closed groups listed in GET /stats.")
