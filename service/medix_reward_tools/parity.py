"""Parity of `medix-r1`'s judge step with the reference, on a real judge: `medix-reward integrity --parity`.

    medix-reward integrity --parity --judge-url http://127.0.0.1:8011/v1 --judge-model qwen2.5-coder-1.5b-instruct

The adversarial corpus (legit, wrong and hack completions) is scored once by the service under `medix-r1`,
through its real pipeline and judge client, with every request body it sends recorded. Then each pair the
reference would ask its judge about (medix_reward_tools/reference.py, from the raw response and ground truth) is sent
once more, directly, as the reference's own request. Parity holds when the service asks about the same pairs,
with the same bytes, and its verdicts are those of the direct calls, pair for pair.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from medix_reward.embedding.backends import Encoder
from medix_reward.judge.client import open_judge_transport
from medix_reward.judge.http import JudgeTransport
from medix_reward.judge.types import JudgeReply
from medix_reward.scoring.pipeline import open_pipeline
from medix_reward.settings import Settings
from medix_reward_client.schema import RewardItem, RewardOptions, RewardRequest
from medix_reward_tools.integrity import Case
from medix_reward_tools.reference import reference_pair, reference_request, reference_yes


@dataclass
class RecordingTransport:
    """A judge transport that keeps every request body it sends, as JSON bytes (aiohttp's json= serialises
    with json.dumps, as the reference's `requests` does)."""

    inner: JudgeTransport
    bodies: list[bytes] = field(default_factory=list)

    async def send(
        self, method: str, url: str, *, body: object | None, headers: Mapping[str, str], timeout_s: float
    ) -> JudgeReply:
        if body is not None:
            self.bodies.append(json.dumps(body).encode())
        return await self.inner.send(method, url, body=body, headers=headers, timeout_s=timeout_s)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True)
class PairVerdicts:
    case: Case
    pair: tuple[str, str]  # (answer, truth) as the reference shows them
    service: str | None  # the service's verdict under medix-r1, or its error code
    reference: str  # the direct call's: YES, NO or judge_rejected_input
    again: tuple[str, ...] = ()  # a disagreement: the direct call's request sent again, its verdicts


@dataclass
class ParityReport:
    items: int
    pairs: list[PairVerdicts]
    pair_mismatches: list[str]  # items the service and the reference do not send to the judge alike
    bodies_equal: int  # pairs whose reference body the service sent, byte for byte
    foreign_bodies: int  # bodies the service sent that the reference would not
    seconds: float

    @property
    def disagreements(self) -> list[PairVerdicts]:
        return [p for p in self.pairs if p.service != p.reference]

    @property
    def judge_flips(self) -> list[PairVerdicts]:
        """Disagreements where the judge answered the reference's identical request both ways when asked again."""
        return [p for p in self.disagreements if {p.reference, *p.again} >= {"YES", "NO"}]

    @property
    def holds(self) -> bool:
        return not (self.pair_mismatches or self.disagreements or self.foreign_bodies) and self.bodies_equal == len(
            self.pairs
        )


async def _direct(client: httpx.AsyncClient, url: str, body: dict[str, object], slots: asyncio.Semaphore) -> str:
    """The reference's verdict on one request sent as `requests` sends it; a request the judge refuses (beyond its
    context) is judge_rejected_input, as the service names it (the reference scores it 0 by its exception)."""
    async with slots:
        reply = await client.post(url, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    if reply.status_code in (400, 413, 422):
        return "judge_rejected_input"
    reply.raise_for_status()
    return "YES" if reference_yes(reply.json()["choices"][0]["message"]["content"]) else "NO"


async def run_parity(
    settings: Settings, cases: list[Case], encoder: Encoder | None = None, again: int = 8
) -> ParityReport:
    """The parity check; each disagreement's reference request is sent `again` more times, so that a judge that
    answers identical bytes both ways (a near tie) shows as such."""
    started = time.perf_counter()
    judge = settings.judge
    recorder = RecordingTransport(open_judge_transport(judge))
    items = [RewardItem(id=c.id, response=c.response, ground_truth=c.ground_truth) for c in cases]
    try:
        async with open_pipeline(settings, encoder=encoder, judge_transport=recorder) as pipeline:
            request = RewardRequest(items=items, options=RewardOptions(preset="medix-r1"))
            response = await pipeline.score(request)
    finally:
        await recorder.aclose()
    assert response.preset == "medix-r1"
    expected: dict[tuple[str, str], Case] = {}
    service: dict[tuple[str, str], str | None] = {}
    mismatches = []
    for case, result in zip(cases, response.results, strict=True):
        pair = reference_pair(case.response, case.ground_truth)
        details = result.details
        asked = (details.predicted_answer, details.true_answer) if details.shortcut is None else None
        if asked != pair:
            mismatches.append(f"{case.id}: reference asks {pair!r}, the service {asked!r}")
        if pair is not None:
            expected.setdefault(pair, case)
            error = result.errors.get("accuracy_llm")
            service[pair] = details.judge_verdict or (error.code if error is not None else None)
    slots = asyncio.Semaphore(judge.concurrency)
    async with httpx.AsyncClient(timeout=judge.timeout_s) as client:
        url = f"{judge.base_urls[0]}/chat/completions"
        bodies = {pair: reference_request(judge.model, *pair) for pair in expected}
        replies = await asyncio.gather(*(_direct(client, url, body, slots) for body in bodies.values()))
        repeats = {
            pair: await asyncio.gather(*(_direct(client, url, bodies[pair], slots) for _ in range(again)))
            for pair, reply in zip(bodies, replies, strict=True)
            if service.get(pair) != reply
        }
    sent = set(recorder.bodies)
    wanted = {json.dumps(body).encode() for body in bodies.values()}
    pairs = [
        PairVerdicts(case, pair, service.get(pair), reply, tuple(repeats.get(pair, ())))
        for (pair, case), reply in zip(expected.items(), replies, strict=True)
    ]
    return ParityReport(len(cases), pairs, mismatches, len(wanted & sent), len(sent - wanted),
                        time.perf_counter() - started)  # fmt: skip


def markdown(report: ParityReport, header: str) -> str:
    by_family = Counter(p.case.family for p in report.pairs)
    yes = Counter((p.case.family, p.reference) for p in report.pairs)
    families = ", ".join(f"{fam} {n} ({yes[(fam, 'YES')]} YES)" for fam, n in sorted(by_family.items()))
    n = len(report.pairs)
    lines = [
        header,
        "",
        f"- Items: {report.items}; pairs the reference asks its judge about: {n} ({families}, by the direct calls).",
        f"- Items the service sends to the judge differently: {len(report.pair_mismatches)}.",
        f"- Request bodies identical to the reference's, byte for byte: {report.bodies_equal} of {n} "
        f"(bodies the reference would not send: {report.foreign_bodies}).",
        f"- Verdicts equal to the direct call's: {n - len(report.disagreements)} of {n}.",
        f"- Parity {'holds' if report.holds else 'FAILS'} ({report.seconds:.0f} s).",
    ]
    lines += [f"  - {line}" for line in report.pair_mismatches]
    for p in report.disagreements:
        again = Counter(p.again)
        line = f"  - {p.case.id} ({p.case.family}): service {p.service}, reference {p.reference}"
        if p.again:
            line += f"; the reference's request again {len(p.again)} times: {again['YES']} YES, {again['NO']} NO"
        lines.append(line)
    if report.disagreements:
        lines.append(
            f"- Disagreements where the judge answers the identical request both ways: {len(report.judge_flips)} "
            f"of {len(report.disagreements)}."
        )
    return "\n".join(lines) + "\n"
