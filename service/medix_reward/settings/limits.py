"""What a caller meets before any work: request and connection limits (admission), auth, and the trainer
endpoints' fallback."""

from __future__ import annotations

from pydantic import Field, SecretStr

from medix_reward.settings.group import _Group


class LimitsSettings(_Group):
    max_items: int = Field(default=8192, ge=1, description="Items in one request.")
    max_response_chars: int = Field(default=32_768, ge=1, description="`response`; beyond it, 422 `too_long`.")
    max_truth_chars: int = Field(
        default=4096, ge=1, description="`ground_truth`, `answer` and `modality`; beyond it, 422 `too_long`."
    )
    max_prompt_chars: int = Field(default=65_536, ge=1, description="`prompt`, accepted for logging only.")
    max_id_chars: int = Field(default=256, ge=1, description="`id` and `group_id`, as text.")
    max_inflight_items: int = Field(
        default=65_536, ge=1, description="Items being scored across all requests; beyond it, 429."
    )
    max_concurrent_requests: int = Field(default=256, ge=1, description="Requests being scored; beyond it, 429.")
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1, description="Request body size; beyond it, 413.")
    body_timeout_s: float = Field(
        default=30.0, gt=0, description="Longest wait for the next part of a request body; beyond it, 408."
    )
    body_deadline_s: float = Field(
        default=120.0, gt=0, description="Longest time to receive a whole request body, however it trickles; 408."
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A request head must be complete this long after the connection opens (or after its first "
        "byte on a kept-alive connection), or the connection is closed (`medix-reward serve`).",
    )
    keep_alive_s: float = Field(
        default=30.0, gt=0, description="An idle kept-alive connection is closed after this (`medix-reward serve`)."
    )
    max_connections: int = Field(
        default=4096,
        ge=1,
        description="Open connections; past it, each new one closes the one waiting longest without a request "
        "(`medix-reward serve`).",
    )


class AdapterSettings(_Group):
    fallback: float | None = Field(
        default=None,
        description="For /openrlhf and /slime, which need a float per sample: the value given to an item "
        "that could not be scored, alone or because every judge call of the request failed (logged and counted). "
        "Unset: the call fails with 502 `unscored` and the trainer retries.",
    )


class AuthSettings(_Group):
    keys: list[SecretStr] = Field(
        default=[],
        description="Bearer tokens for /reward, /evaluate, the trainer endpoints and /config (compared in constant "
        "time); none: no auth, and the service logs a warning when it listens beyond loopback.",
    )
