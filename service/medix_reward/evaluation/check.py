"""`medix-reward judge check`: is the reward judge fit to serve rewards? The same question calibration asks of
the evaluation judge (calibration.py), asked of the YES/NO verdict a reward is made of.

The known pairs are the binary calibration items (half equivalent, half not). Each is asked twice through the
reward's own request (judge/client.py's `JudgeClient.verdict`, the prompt of the preset): as (answer, ground truth) and
with the two swapped, which must not change an equivalence. The judge passes with agreement with the labels of
at least `min_agreement`, at most `max_swap_changes` of the pairs changing verdict when swapped, and a share of
YES between `yes_share` bounds: a judge that answers everything the same way is not ready. Unreadable replies
(a strict prompt's) count as disagreeing; a judge that cannot be reached is an error, not a verdict.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from medix_reward.evaluation.calibration import ITEMS
from medix_reward.judge.client import JudgeClient
from medix_reward.judge.prompts import JudgeAsk
from medix_reward.judge.types import JudgeError, JudgeStats

MIN_AGREEMENT = 0.8
MAX_SWAP_CHANGES = 0.2
YES_SHARE = (0.2, 0.8)  # the pairs are half equivalent: outside this, the judge leans one way whatever it reads


@dataclass
class JudgeCheck:
    pairs: int
    agreement: float  # of the 2 × pairs verdicts, those equal to the labels
    swap_changes: float  # pairs whose verdict changed when answer and ground truth swapped roles
    yes_share: float  # of the readable verdicts
    unreadable: int
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        verdict = "passed" if self.passed else "FAILED: " + "; ".join(self.problems)
        return [
            f"known pairs: {self.pairs}, each asked as (answer, ground truth) and swapped",
            f"agreement with the labels: {self.agreement:.0%} (≥ {MIN_AGREEMENT:.0%} needed)",
            f"verdicts changed by the swap: {self.swap_changes:.0%} (≤ {MAX_SWAP_CHANGES:.0%})",
            f"share of YES: {self.yes_share:.0%} (between {YES_SHARE[0]:.0%} and {YES_SHARE[1]:.0%}; the pairs are "
            f"half equivalent), {self.unreadable} unreadable",
            verdict,
        ]


def judge_check(labels: list[int], straight: list[bool | None], swapped: list[bool | None]) -> JudgeCheck:
    """The verdicts on the known pairs, judged (pure)."""
    every = straight + swapped
    agreement = sum(v is not None and int(v) == label for v, label in zip(every, labels * 2, strict=True)) / len(every)
    changes = sum(a != b for a, b in zip(straight, swapped, strict=True)) / len(straight)
    readable = [v for v in every if v is not None]
    yes_share = sum(readable) / len(readable) if readable else 0.0
    problems = []
    if agreement < MIN_AGREEMENT:
        problems.append(f"agreement with known labels {agreement:.0%} < {MIN_AGREEMENT:.0%}")
    if changes > MAX_SWAP_CHANGES:
        problems.append(f"swapping answer and ground truth changed {changes:.0%} of verdicts > {MAX_SWAP_CHANGES:.0%}")
    if not YES_SHARE[0] <= yes_share <= YES_SHARE[1]:
        problems.append(f"answers YES to {yes_share:.0%} of pairs, half of which are equivalent")
    return JudgeCheck(len(labels), agreement, changes, yes_share, every.count(None), problems)


async def check(client: JudgeClient, ask: JudgeAsk) -> JudgeCheck:
    """Asks the known pairs both ways, concurrently (bounded by the client's concurrency)."""
    items = ITEMS["binary"]
    stats = JudgeStats()

    async def verdict(answer: str, truth: str) -> bool | None:
        try:
            return (await client.verdict(answer, truth, stats, ask)).yes
        except JudgeError as exc:
            if exc.code == "judge_bad_reply":  # the judge answered, but not a label
                return None
            raise

    straight = await asyncio.gather(*(verdict(item.response, item.reference) for item in items))
    swapped = await asyncio.gather(*(verdict(item.reference, item.response) for item in items))
    return judge_check([item.label for item in items], list(straight), list(swapped))
