"""`POST /evaluate`'s judge, rounds, tasks, templates and calibration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from medix_reward.evaluation.templates import TemplateSet, template_set
from medix_reward.settings.group import _Group
from medix_reward.settings.judge import JudgeSettings


class EvaluateSettings(_Group):
    """`POST /evaluate` (evaluation/evaluate.py): the judge that grades checkpoints, which may differ from the
    reward's."""

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
