# Triton on GPU with what the tonewatch model's Python backend imports: numpy<2 (the stub's
# ABI), tokenizers and ONNX Runtime with CUDA. No torch: the served graph is ONNX.
# 24.10 is Triton 2.51, the server that nvidia-pytriton 0.7.0 ships and the local launcher
# runs on CPU, so one model repository serves both. Keep ONNXRUNTIME_VERSION equal to the
# onnxruntime pin in requirements.lock (tests/unit/test_compose.py checks it).
FROM nvcr.io/nvidia/tritonserver:24.10-py3
ARG ONNXRUNTIME_VERSION=1.32.0
ENV PIP_NO_CACHE_DIR=1
COPY requirements.lock /tmp/requirements.lock
RUN pip install --constraint /tmp/requirements.lock numpy tokenizers \
    && pip install "onnxruntime-gpu==${ONNXRUNTIME_VERSION}" \
    && rm /tmp/requirements.lock
