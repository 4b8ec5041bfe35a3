# The reward service for a GPU node. `docker compose up` runs it beside the vLLM judge.
# BASE: any image with Python 3.11 and pip on PATH and useradd; `make image` builds with a local Debian base.
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models MEDIX_REWARD_HOST=0.0.0.0 MEDIX_REWARD_PORT=8080

WORKDIR /app

# torch first, in a layer of its own. The default, PyPI's Linux wheel, is the CUDA build the GPU node needs;
# a CPU image passes e.g. --build-arg TORCH=torch==2.13.0+cpu (TORCH_INDEX: an extra index that holds it).
ARG TORCH=torch
ARG TORCH_INDEX=
RUN pip install ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} "$TORCH"

# Dependencies next, in their own layer: source and README edits do not reinstall them. The stub package carries
# a __version__ since pyproject.toml reads the version from it; the stubs and setuptools' build/ go, or the next
# install would take build/'s stub __init__.py over the source's (older mtime).
COPY pyproject.toml ./
RUN mkdir -p service/medix_reward client/medix_reward_client \
    && touch README.md service/medix_reward/__init__.py \
    && echo '__version__ = "0"' > client/medix_reward_client/__init__.py \
    && pip install '.[server]' \
    && pip uninstall -y medix-reward \
    && rm -rf build service client README.md

COPY README.md ./
COPY service/ service/
COPY client/ client/
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 medix \
    && mkdir -p /models && chown medix /models

USER medix
EXPOSE 8080

# Ready means: the embedder is warm, the batcher alive, and a judge replica answers.
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/ready', timeout=4).status != 200)"

# One worker per process: the process holds the embedding model on the GPU. Scale with replicas.
CMD ["medix-reward", "serve"]
