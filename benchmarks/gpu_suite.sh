#!/usr/bin/env bash
# Every GPU check in one call of at most 8 minutes: training throughput and peak memory of PAIG's
# fast and paper recipes and of HGN (pendulum, batch 16), eager, compiled and under bf16; each of
# the four steps against the device's floor (benchmarks/floor.py); the decoder's separable warp
# against grid_sample; the spring_color recovery on 3 seeds. Writes gpu_results/ (in $OUT when set).
#
#   bash benchmarks/gpu_suite.sh                         # on a GPU machine
#   bash benchmarks/gpu_suite.sh --device cpu --quick    # the same path in under two minutes on a CPU
#
# --quick takes two steps per figure, one seed for 10 s on a small dataset and no compilation: it
# checks that the suite runs, and its figures mean nothing. A figure that fails is written as FAILED
# and the suite goes on. $PYTHON picks the interpreter (default: python). On a machine without pydantic, install
# its wheels first (see docs/RESULTS.md, "How to produce the missing numbers").
set -euo pipefail
cd "$(dirname "$0")/.."
device=cuda
quick=false
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="${2:?--device needs a value: cuda, cuda:N or cpu}"; shift 2 ;;
    --quick) quick=true; shift ;;
    *) echo "gpu_suite.sh: unknown argument '$1' (allowed: --device DEVICE, --quick)" >&2; exit 2 ;;
  esac
done
if $quick; then
  steps=2 hgn_steps=1 warmup=1 seeds=0 budget=10s variants=("")
  floor_options=(--batch-size 2 --steps 1 --warmup 1 --passes 1 --repeats 1)
  small=(--set data.n_train=64 --set data.n_test=16 --set data.n_valid=16)
else
  steps=50 hgn_steps=20 warmup=3 seeds=0,1,2 budget=45s variants=("" --compile --bf16)
  floor_options=()
  small=()
fi
out="${OUT:-.}/gpu_results"
mkdir -p "$out"
py="${PYTHON:-python}"
if $quick; then small+=(--set "data.cache_dir=$out/data-cache"); fi
{
  date -u +"date %Y-%m-%dT%H:%MZ"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} > "$out/device.txt"
: > "$out/throughput.txt"
for variant in "${variants[@]}"; do
  for recipe in fast paper; do
    "$py" benchmarks/train_throughput.py --device "$device" --task spring_color --set training.recipe=$recipe \
      --steps $steps --warmup $warmup $variant >> "$out/throughput.txt" || echo "FAILED spring_color $recipe $variant" >> "$out/throughput.txt"
  done
  "$py" benchmarks/train_throughput.py --device "$device" --task pendulum --steps $hgn_steps --warmup $warmup $variant \
    >> "$out/throughput.txt" || echo "FAILED pendulum $variant" >> "$out/throughput.txt"
done
# the step against the floor: PAIG at the paper's batch of 100, HGN at the preset's 16
: > "$out/floor.txt"
for setup in "spring_color fast --batch-size 100" "spring_color paper --batch-size 100" "pendulum fast" "pendulum paper"; do
  read -r task recipe batch <<< "$setup"
  "$py" benchmarks/floor.py --device "$device" --task $task --set training.recipe=$recipe $batch \
    ${floor_options[@]+"${floor_options[@]}"} --json "$out/floor-$task-$recipe.json" >> "$out/floor.txt" \
    || echo "FAILED floor $task $recipe" >> "$out/floor.txt"
done
"$py" benchmarks/decoder_warp.py --device "$device" --repeats $((steps < 20 ? steps : 20)) >> "$out/throughput.txt"
# 3 seeds × 45 s of training each, with data generation and evaluation: about 3 minutes
"$py" benchmarks/recovery.py spring_color --seeds $seeds --max-time $budget --device "$device" ${small[@]+"${small[@]}"} \
  --out "$out/runs" --json "$out/recovery_spring_color.json" > "$out/recovery_spring_color.md"
cat "$out/device.txt" "$out/throughput.txt" "$out/floor.txt" "$out/recovery_spring_color.md"
