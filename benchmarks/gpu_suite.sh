#!/usr/bin/env bash
# Every GPU check in one call of at most 8 minutes: the spring_color recovery on 5 seeds, the
# training throughput of PAIG's fast and paper recipes and of HGN (pendulum, batch 16), the decoder's
# separable warp against grid_sample. Writes
# gpu_results/ (in $OUT when set).
#
# On a machine without pydantic, install its wheels first (see docs/RESULTS.md, "GPU").
#   bash benchmarks/gpu_suite.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}/gpu_results"
mkdir -p "$out"
{
  date -u +"date %Y-%m-%dT%H:%MZ"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} > "$out/device.txt"
for recipe in fast paper; do
  python benchmarks/train_throughput.py --device cuda --task spring_color --set training.recipe=$recipe --steps 50 \
    >> "$out/throughput.txt"
done
python benchmarks/train_throughput.py --device cuda --task pendulum --steps 20 >> "$out/throughput.txt"
python benchmarks/decoder_warp.py --device cuda --repeats 20 >> "$out/throughput.txt"
# 5 seeds × 70 s of training each, evaluation included: about 6.5 minutes
python benchmarks/recovery.py spring_color --seeds 0,1,2,3,4 --max-time 70s --device cuda \
  --out "$out/runs" --json "$out/recovery_spring_color.json" > "$out/recovery_spring_color.md"
cat "$out/device.txt" "$out/throughput.txt" "$out/recovery_spring_color.md"
