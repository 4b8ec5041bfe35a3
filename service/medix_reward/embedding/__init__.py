"""Sentence embeddings: encoder backends, the ONNX/OpenVINO export, the micro-batcher and the embedding cache."""
