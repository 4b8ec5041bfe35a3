"""The helpers the tools and the tests share: loopback ports, waiting for a server, GRPO-shaped batches,
percentiles. One implementation each."""

from __future__ import annotations

import math
import random
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx

# -- ports and readiness ----------------------------------------------------------------------------------


def bind_loopback(port: int = 0) -> socket.socket:
    """A TCP socket bound to 127.0.0.1:port (0: any free port), ready to hand to a server."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def free_port() -> int:
    """A loopback port that was free a moment ago, for a server started in another process."""
    with bind_loopback() as sock:
        return sock.getsockname()[1]


def wait_for(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout_s: float = 60.0,
    interval_s: float = 0.2,
    alive: Callable[[], bool] | None = None,
) -> None:
    """The one readiness wait: poll `ready` until it is true. RuntimeError as soon as `alive` says what is
    awaited has died (a process that exited, a thread that ended); TimeoutError when `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if alive is not None and not alive():
            raise RuntimeError(f"{what} exited before it was ready")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} was not ready within {timeout_s:g} s")
        time.sleep(interval_s)


def wait_until_ready(
    url: str,
    *,
    process: subprocess.Popen[Any] | None = None,
    timeout_s: float = 60.0,
    interval_s: float = 0.2,
    what: str = "the server",
) -> None:
    """Poll `url` with GET until it answers 200 (wait_for); RuntimeError if `process` exits first."""

    def answers() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    alive = None if process is None else lambda: process.poll() is None
    wait_for(answers, what=f"{what} at {url}", timeout_s=timeout_s, interval_s=interval_s, alive=alive)


# -- GRPO-shaped batches ----------------------------------------------------------------------------------
# Three generators, because they serve three purposes: `grpo_items` is the benchmark's realistic, seeded mix
# (and the soak's load); `grpo_batch` is the tests' small, fixed batch whose every item a test can reason
# about; `distinct_items` makes every item a judge call of its own, for tests that count or load the judge.

# (modality, finding, paraphrases, wrong answers); each prompt pairs one with a site, so truths vary.
_CASES = [
    ("X_RAY", "pneumothorax", ["collapsed lung", "air in the pleural space"], ["pleural effusion", "pneumonia"]),
    ("CT_SCAN", "subdural hematoma", ["subdural bleed", "crescent-shaped hemorrhage"], ["epidural hematoma"]),
    ("MRI_SCAN", "glioblastoma", ["high-grade glioma", "GBM"], ["meningioma", "brain abscess"]),
    ("ULTRASOUND", "cholelithiasis", ["gallstones", "stones in the gallbladder"], ["cholecystitis", "polyp"]),
    ("FUNDUS_PHOTOGRAPHY", "diabetic retinopathy", ["retinal microaneurysms"], ["glaucoma", "macular hole"]),
    ("MICROSCOPY", "adenocarcinoma", ["glandular carcinoma"], ["squamous cell carcinoma", "lymphoma"]),
    ("MAMMOGRAPHY", "spiculated mass", ["stellate lesion"], ["benign calcifications", "cyst"]),
    ("ENDOSCOPY", "gastric ulcer", ["peptic ulcer of the stomach"], ["gastritis", "varices"]),
    ("OCT_SCAN", "macular edema", ["retinal thickening at the macula"], ["drusen", "epiretinal membrane"]),
    ("ANGIOGRAPHY", "coronary stenosis", ["narrowed coronary artery"], ["aneurysm", "dissection"]),
]  # fmt: skip
_SITES = ["left side", "right side", "upper lobe", "lower lobe", "apex", "base", "anterior wall", "posterior wall"]
_REASONING = (
    "The image shows {finding_hint}. Comparing with normal anatomy, the {site} looks abnormal. "
    "Other causes such as {wrong} are less likely given the distribution and the clinical picture."
)
PROMPTS = len(_CASES) * len(_SITES)  # distinct prompts (case × site) that `grpo_items` draws from


def grpo_items(
    prompts: int, group: int, duplicate_share: float = 0.3, seed: int = 0, first_prompt: int = 0
) -> list[dict[str, Any]]:
    """P prompts × G samples, consecutive per prompt: exact matches, paraphrases, wrong and invalid
    answers, some broken formats, and a share of answers repeated within the group. Reproducible for a
    seed; `first_prompt` picks where in the (case × site) list of `PROMPTS` prompts the batch starts."""
    rng = random.Random(seed)
    items = []
    for p in range(prompts):
        q = (first_prompt + p) % PROMPTS
        modality, finding, paraphrases, wrongs = _CASES[q % len(_CASES)]
        site = _SITES[q // len(_CASES)]
        truth = f"{finding} of the {site}".capitalize()
        answers: list[str] = []
        for s in range(group):
            if answers and rng.random() < duplicate_share:
                answer = rng.choice(answers)
            else:
                kind = rng.choices(["exact", "paraphrase", "wrong", "invalid"], [0.2, 0.4, 0.3, 0.1])[0]
                answer = {
                    "exact": truth,
                    "paraphrase": f"{rng.choice(paraphrases)} ({site}), sample {s}",
                    "wrong": f"{rng.choice(wrongs)} of the {rng.choice(_SITES)}",
                    "invalid": f"Diagnosis: {finding}?",
                }[kind]
            answers.append(answer)
            thinking = _REASONING.format(finding_hint=rng.choice(paraphrases), site=site, wrong=rng.choice(wrongs))
            tag = modality if rng.random() < 0.9 else rng.choice(_CASES)[0]
            if rng.random() < 0.85:
                response = f"<{tag}> <thinking>{thinking}</thinking> <answer>{answer}</answer>"
            else:
                response = f"<{tag}> {thinking} The answer is {answer}."  # no tags: format 0
            items.append({"id": f"{p}-{s}", "group_id": p, "response": response,
                          "ground_truth": f"<{modality}> {truth}"})  # fmt: skip
    return items


def grpo_batch(prompts: int = 4, group: int = 8) -> list[dict[str, object]]:
    """GRPO-shaped: `group` samples for each of `prompts` prompts, consecutive, with repeats. Fixed content:
    every third sample names the wrong modality; neighbouring samples share an answer."""
    truths = ["<X_RAY> Pneumothorax", "<CT_SCAN> Subdural hematoma", "<MRI_SCAN> Glioblastoma",
              "<ULTRASOUND> Gallstones", "<FUNDUS_PHOTOGRAPHY> Diabetic retinopathy"]  # fmt: skip
    answers = ["Pneumothorax", "Left pneumothorax", "Pleural effusion", "Gallstones", "Cholelithiasis",
               "Subdural hematoma", "Glioblastoma multiforme", "Normal study", "Diabetic retinopathy"]  # fmt: skip
    items = []
    for p in range(prompts):
        truth = truths[p % len(truths)]
        tag = truth.split(">")[0] + ">"
        for s in range(group):
            answer = answers[(p + s // 2) % len(answers)]
            modality = tag if s % 3 else "<CT_SCAN>"
            items.append({
                "id": f"{p}-{s}", "group_id": p, "ground_truth": truth,
                "response": f"{modality} <thinking>Looking at the image.</thinking> <answer>{answer}</answer>",
            })  # fmt: skip
    return items


def distinct_items(n: int) -> list[dict[str, object]]:
    """`n` items, each a different answer that is not an exact match: every item costs one judge call."""
    findings = ["pneumothorax", "effusion", "consolidation", "cardiomegaly", "nodule", "fracture"]
    return [
        {"id": i, "ground_truth": "<X_RAY> Pneumothorax",
         "response": f"<X_RAY> <thinking>r</thinking> <answer>Left {findings[i % 6]} number {i}</answer>"}
        for i in range(n)
    ]  # fmt: skip


# -- statistics -------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (no interpolation): the smallest value with at least a share `q` of the
    values at or below it, so p50 and p99 are always observed values. NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
