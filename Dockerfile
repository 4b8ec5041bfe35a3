# The reward service for a GPU node. `docker compose up` runs it beside the vLLM judge.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/models MEDIX_REWARD_HOST=0.0.0.0 MEDIX_REWARD_PORT=8080

WORKDIR /app

# Dependencies first, in their own layer: source edits do not reinstall torch. PyPI's Linux torch wheel
# is the CUDA build, which the GPU node needs.
COPY pyproject.toml README.md ./
RUN mkdir -p service/medix_reward client/medix_reward_client \
    && touch service/medix_reward/__init__.py client/medix_reward_client/__init__.py \
    && pip install '.[server]' \
    && pip uninstall -y medix-reward

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
