"""The embedder's backends compared on the benchmark's texts: speed and cosine agreement with PyTorch."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medix_reward.embedding.backends import (
    EmbedderError,
    Encoder,
    SentenceTransformerEncoder,
    cosine,
    resolve_model_path,
)
from medix_reward.embedding.export import export_onnx
from medix_reward.scoring.checks import Tags, check_item, split_ground_truth
from medix_reward.settings import (
    DefenceSettings,
    EmbedderSettings,
    RewardSettings,
)

if TYPE_CHECKING:
    from medix_reward_tools.bench.run import BenchConfig


def _pairs_of(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The distinct (answer, truth) pairs whose similarity decides a score (no exact/invalid shortcut)."""
    checked = [check_item(i["response"], *reversed(split_ground_truth(i["ground_truth"])), Tags()) for i in items]
    return sorted({(c.predicted_answer, c.true_answer) for c in checked if c.shortcut is None})


def _similarities(encoder: Encoder, pairs: list[tuple[str, str]]) -> np.ndarray:
    texts = sorted({t for pair in pairs for t in pair})
    vectors = dict(zip(texts, encoder.encode(texts), strict=True))
    return np.array([cosine(vectors[a], vectors[b]) for a, b in pairs])


def _backend_variants(config: BenchConfig, export_dir: Path) -> dict[str, Any]:
    """Each backend's encoder (those whose runtime is installed), and ONNX Runtime on an int8-quantised export:
    measured only, not offered as a setting, since it moves similarities across the threshold."""
    variants: dict[str, Any] = {}
    for backend in config.backends:
        settings = EmbedderSettings(model=config.embedder, device="cpu", backend=backend, export_dir=str(export_dir))
        try:
            variants[backend] = SentenceTransformerEncoder(settings)
        except EmbedderError as exc:  # the runtime is not installed
            variants[backend] = str(exc)
    onnx = variants.get("onnx")
    if isinstance(onnx, SentenceTransformerEncoder):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        exported = export_onnx(onnx.model, resolve_model_path(config.embedder), export_dir)
        quantized = exported.with_name("model-int8.onnx")
        if not quantized.exists():
            quantize_dynamic(exported, quantized, weight_type=QuantType.QInt8)
        settings = EmbedderSettings(model=config.embedder, device="cpu", backend="onnx", export_dir=str(export_dir))
        int8 = SentenceTransformerEncoder(settings, onnx_file=quantized)
        variants["onnx-int8"] = int8
    return variants


def backend_rows(config: BenchConfig, bench_items: list[dict[str, Any]], export_dir: Path) -> list[dict[str, Any]]:
    """Per backend: texts/s of a plain batched encode of the benchmark batch's distinct texts (best of 3 rounds,
    the backends interleaved),
    the largest |Δcosine| against torch, and decisions flipped at the reward's threshold (0.8) on the batch and
    on the parity corpus (tests/data/adversarial.jsonl), and at the hardened preset's floor (0.15) on the corpus."""
    from medix_reward_tools.integrity import load_corpus

    threshold, floor = RewardSettings().embed_threshold, DefenceSettings().semantic_floor or 0.0
    bench_pairs = _pairs_of(bench_items)
    corpus_pairs = _pairs_of([{"response": c.response, "ground_truth": c.ground_truth} for c in load_corpus()])
    texts = sorted({t for pair in bench_pairs for t in pair})
    variants = _backend_variants(config, export_dir)
    encoders = {name: encoder for name, encoder in variants.items() if not isinstance(encoder, str)}
    seconds: dict[str, list[float]] = {name: [] for name in encoders}
    for encoder in encoders.values():
        encoder.encode(texts[:8])  # warm
    for _ in range(3):  # rounds over all backends, so that a shared machine's swings hit each alike
        for name, encoder in encoders.items():
            started = time.perf_counter()
            encoder.encode(texts)
            seconds[name].append(time.perf_counter() - started)
    rows, reference = [], None
    for name, encoder in variants.items():
        if isinstance(encoder, str):
            rows.append({"backend": name, "unavailable": encoder})
            continue
        sims = (_similarities(encoder, bench_pairs), _similarities(encoder, corpus_pairs))
        reference = reference or sims  # torch comes first
        rows.append({
            "backend": name, "texts": len(texts), "texts_per_s": len(texts) / min(seconds[name]),
            "texts_per_s_median": len(texts) / statistics.median(seconds[name]),
            "max_abs_delta_cosine": float(max(np.abs(s - r).max() for s, r in zip(sims, reference, strict=True))),
            "flips_batch": int(((sims[0] >= threshold) != (reference[0] >= threshold)).sum()),
            "flips_corpus": int(((sims[1] >= threshold) != (reference[1] >= threshold)).sum()),
            "flips_corpus_floor": int(((sims[1] >= floor) != (reference[1] >= floor)).sum()),
            "pairs_batch": len(bench_pairs), "pairs_corpus": len(corpus_pairs),
        })  # fmt: skip
    torch_rate = rows[0]["texts_per_s"]
    for row in rows:
        if "texts_per_s" in row:
            row["speedup_vs_torch"] = row["texts_per_s"] / torch_rate
    return rows


# -- judge client cost ------------------------------------------------------------------------------------
