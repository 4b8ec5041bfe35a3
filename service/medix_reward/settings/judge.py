"""The reward judge: its replicas, retries, adaptive limit, verdict cache and circuit breakers."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from medix_reward.settings.group import _Group


class JudgeHealthSettings(_Group):
    """Each judge replica's circuit breaker (judge/health.py)."""

    window_s: float = Field(default=60.0, gt=0, description="Attempts older than this are forgotten.")
    min_failures: int = Field(
        default=3,
        ge=1,
        description="This many failed attempts in a row open the replica's circuit breaker, or this many within the "
        "window when they are also failure_ratio of its attempts there.",
    )
    failure_ratio: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="The share of a replica's attempts in the window that must fail (see min_failures).",
    )
    probe_interval_s: float = Field(
        default=2.0,
        gt=0,
        description="An open replica is probed (GET /models) this often; an answer half-opens its breaker.",
    )
    probe_timeout_s: float = Field(default=2.0, gt=0, description="A probe not answered within this fails.")


class JudgeSettings(_Group):
    base_urls: list[str] = Field(
        default=["http://127.0.0.1:8000/v1"],
        description="OpenAI-compatible base URLs (replicas); calls are spread over them and a failed attempt is "
        "retried on the next. Reached directly: HTTP(S)_PROXY is not read for judge calls.",
    )
    model: str = Field(default="Qwen/Qwen3-4B-Instruct-2507", description="The judge's served model name.")
    api_key: SecretStr | None = Field(default=None, description="Bearer token for the judge.")
    timeout_s: float = Field(
        default=30.0, gt=0, description="Per attempt, counted from when the call is sent (not while it waits)."
    )
    max_retries: int = Field(default=3, ge=0, description="Retries after the first attempt.")
    backoff_base_s: float = Field(default=0.2, ge=0, description="Capped exponential backoff with full jitter: base.")
    backoff_max_s: float = Field(default=5.0, ge=0, description="The backoff's cap.")
    retry_after_max_s: float = Field(default=30.0, ge=0, description="Cap on a server's Retry-After.")
    concurrency: int = Field(
        default=64,
        ge=1,
        description="Judge calls in flight at most, all requests together (also the keep-alive connections).",
    )
    adaptive: bool = Field(
        default=True,
        description="Per replica, the calls in flight adapt to the judge's latency (AIMD up to `concurrency`: slow "
        "start, then additive increase; halved once when a call is slower than target_latency_s, times out, or gets "
        "429/503), so a judge slower than assumed gives fewer verdicts per second, never none; /metrics shows "
        "medix_reward_judge_limit and medix_reward_judge_waiting per replica. Off: always `concurrency` in flight.",
    )
    deadline_s: float | None = Field(
        default=None,
        gt=0,
        description="Default time a request's judge calls may take in all (options.deadline_s overrides); pairs not "
        "judged by then are null with judge_deadline, the rest scored. None: no deadline.",
    )
    target_latency_s: float | None = Field(
        default=None, gt=0, description="A call slower than this shrinks the adaptive limit; default timeout_s / 2."
    )
    max_tokens: int = Field(default=4, ge=1, description="The reference's 4.")
    chat_template_kwargs: dict[str, object] = Field(
        default={"enable_thinking": False},
        description="Sent with every call, as the reference does; set {} for a judge that refuses the field. "
        "Part of the config hash, as max_tokens is.",
    )
    logprobs: bool = Field(default=False, description="Ask for logprobs; details.judge_p_yes reports P(YES).")
    cache_size: int = Field(
        default=100_000,
        ge=0,
        description="Verdicts kept across requests (LRU, keyed by model, prompt version, answer and truth as the "
        "judge saw them); 0 disables.",
    )
    cache_bytes: int = Field(default=256 * 2**20, ge=0, description="Approximate memory the verdicts may hold.")
    health: JudgeHealthSettings = Field(
        default=JudgeHealthSettings(), description="When a replica counts as down, and how it is probed back."
    )
    max_answer_chars: int = Field(
        default=2000,
        ge=1,
        description="Under the hardened preset, the predicted and the true answer are cut to this many characters "
        "before the judge sees them (details.judge_truncated says so), so one long answer cannot overflow the "
        "judge's context. medix-r1 sends them whole, as the reference does.",
    )

    @field_validator("base_urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"judge base URL must start with http:// or https://: {url!r}")
        return [url.rstrip("/") for url in urls]
