#!/usr/bin/env bash
# GPU check of the served model (issue: model, item 8). Run it on a machine with an NVIDIA
# GPU, from the repository root, after `make install` and `tonewatch model train`:
#   bash tonewatch/bench/gpu_check.sh > gpu.json
# It installs onnxruntime-gpu beside the CPU build, exports the latest trained model, starts
# Triton (the pytriton binary is CUDA-enabled; the instance group in config.pbtxt names no
# kind, so Triton places the instances on the GPU and the backend picks ONNX Runtime's CUDA
# provider), then
# prints the same JSON as `tonewatch bench inference`. Not run in CI: this machine has no GPU.
set -euo pipefail
BIN="${VENV:-.venv}/bin"
ORT_VERSION="$(grep -E '^onnxruntime==' requirements.lock | cut -d= -f3)"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >&2
"$BIN/pip" install --quiet "onnxruntime-gpu==${ORT_VERSION}"
"$BIN/tonewatch" services up --only triton >&2
"$BIN/tonewatch" model export >&2
"$BIN/tonewatch" bench inference --messages "${MESSAGES:-5000}" --concurrency "${CONCURRENCY:-64}" --json
