"""The encoder's transformer exported to ONNX once, for the ONNX Runtime and OpenVINO backends, and cached on
disk by the model's files and the exporter's version."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from pathlib import Path

from medix_reward.settings import EmbedderSettings

log = logging.getLogger(__name__)

ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ONNX_OPSET = 17


def export_folder(settings: EmbedderSettings) -> Path:
    return Path(settings.export_dir or Path.home() / ".cache" / "medix-reward" / "exports")


def export_onnx(model: object, model_path: str, folder: Path) -> Path:
    """The model's transformer as ONNX, exported once and reused: keyed by the model's files (path, size and
    mtime of each) and the torch version, so a changed model or exporter makes a new export."""
    import torch

    source = Path(model_path)
    files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else []
    fingerprint = [str(source.resolve()), torch.__version__, ONNX_OPSET]
    fingerprint += [(str(p.relative_to(source)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    key = hashlib.sha256(json.dumps(fingerprint).encode()).hexdigest()[:16]
    target = folder / f"{source.name}-{key}" / "model.onnx"
    if target.exists():
        log.info("embedder: reusing the ONNX export %s", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    transformer = model[0].auto_model.eval()  # type: ignore[index]

    class _Hidden(torch.nn.Module):  # the token embeddings, which sentence-transformers' pooling takes
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    features = model.preprocess(["an example sentence", "a second, longer example sentence"])  # type: ignore[attr-defined]
    axes = {name: {0: "batch", 1: "tokens"} for name in (*ONNX_INPUTS, "token_embeddings")}
    partial = target.with_suffix(f".{os.getpid()}.partial")  # renamed when complete: no half export is reused
    with torch.inference_mode(False), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Hidden(), tuple(features[name] for name in ONNX_INPUTS), str(partial), input_names=list(ONNX_INPUTS),
            output_names=["token_embeddings"], dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False,
        )  # fmt: skip
    partial.replace(target)
    log.info("embedder: exported %s to ONNX in %.1f s: %s", model_path, time.perf_counter() - started, target)
    return target
