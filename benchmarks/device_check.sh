#!/usr/bin/env bash
# Checks for a machine with a GPU; on one without, checks that --device cuda is refused.
#
#   benchmarks/device_check.sh            # from anywhere; runs in the repository root
#
# With a GPU:
#   1. nvidia-smi -L;
#   2. the device-agnostic tests: pytest -q tests/distributed tests/test_train.py -x
#      (no NETSHRINK_TEST_DEVICE to export: neither tests/ nor src/ reads it);
#   3. netshrink train lenet5 --device cuda, then netshrink eval --device cuda on it;
#   4. nccl smoke: the same short training in 1 process and under
#      torchrun --nproc-per-node 1 (their test top-1 must agree within 2 points); an
#      nccl all-reduce in a 1-rank group (torchrun with one rank sets WORLD_SIZE=1, so
#      netshrink itself joins no group); with 2+ GPUs also a 2-rank nccl training.
# Without a GPU: says so, checks that `train --device cuda` fails with exactly one line
# on stderr, and exits 0. Any failure exits non-zero (set -e).
#
# Outputs go to $OUT_DIR (default: $OUT/device_check where $OUT is set, else a fresh
# temporary folder). BIN (default .venv/bin) holds python, netshrink and torchrun.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BIN:-.venv/bin}
if [[ -z ${OUT_DIR:-} ]]; then
    if [[ -n ${OUT:-} ]]; then OUT_DIR=$OUT/device_check; else OUT_DIR=$(mktemp -d); fi
fi
mkdir -p "$OUT_DIR"
echo "outputs: $OUT_DIR"

step() { printf '\n== %s\n' "$*"; }

step "GPUs"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L; then :; else echo "none (no nvidia-smi, or it lists no GPU)"; fi
gpus=$("$BIN/python" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')
echo "torch sees $gpus CUDA device(s) ($("$BIN/python" -c 'import torch; print(torch.__version__)'))"

if [[ $gpus -eq 0 ]]; then
    step "no GPU: --device cuda must be refused with one line"
    set +e
    "$BIN/netshrink" train lenet5 --data mnist5k --epochs 1 --limit 200 --device cuda \
        --quiet --out "$OUT_DIR/refused" >"$OUT_DIR/refused.stdout" 2>"$OUT_DIR/refused.stderr"
    rc=$?
    set -e
    lines=$(wc -l <"$OUT_DIR/refused.stderr")
    cat "$OUT_DIR/refused.stderr"
    if [[ $rc -eq 0 || $lines -ne 1 ]] || ! grep -q 'no CUDA device' "$OUT_DIR/refused.stderr"; then
        echo "FAIL: expected a non-zero exit and one 'no CUDA device' line (exit $rc, $lines line(s))"
        exit 1
    fi
    echo "ok: refused (exit $rc, one line). No GPU here: nothing else to check."
    exit 0
fi

step "device-agnostic tests"
"$BIN/python" -m pytest -q tests/distributed tests/test_train.py -x

step "train and eval on the GPU"
"$BIN/netshrink" train lenet5 --data mnist5k --epochs 1 --device cuda --out "$OUT_DIR/gpu_run" --quiet
"$BIN/netshrink" eval "$OUT_DIR/gpu_run/model.pt" --device cuda

step "nccl smoke: 1 process vs torchrun --nproc-per-node 1"
short=(train lenet5 --data mnist5k --epochs 1 --limit 1000 --device cuda --quiet)
"$BIN/netshrink" "${short[@]}" --out "$OUT_DIR/one_process"
"$BIN/torchrun" --standalone --nproc-per-node 1 --no-python "$BIN/netshrink" "${short[@]}" \
    --out "$OUT_DIR/torchrun_1"
"$BIN/python" - "$OUT_DIR/one_process" "$OUT_DIR/torchrun_1" <<'EOF'
import json, sys
top1 = [json.load(open(f"{d}/metrics.json"))["metrics"]["test_top1"] * 100 for d in sys.argv[1:]]
print(f"test top-1: 1 process {top1[0]:.2f}%, torchrun x1 {top1[1]:.2f}%")
sys.exit(0 if abs(top1[0] - top1[1]) <= 2 else "FAIL: test top-1 differs by more than 2 points")
EOF
# A 1-rank nccl group: the backend itself (netshrink joins none when WORLD_SIZE is 1).
"$BIN/torchrun" --standalone --nproc-per-node 1 --no-python "$BIN/python" -c '
import torch, torch.distributed as dist
dist.init_process_group("nccl")
t = torch.full((4,), 3.0, device="cuda")
dist.all_reduce(t)
assert t.tolist() == [3.0] * 4, t
print("nccl all-reduce, 1 rank: ok")
dist.destroy_process_group()'
if [[ $gpus -ge 2 ]]; then
    "$BIN/torchrun" --standalone --nproc-per-node 2 --no-python "$BIN/netshrink" "${short[@]}" \
        --out "$OUT_DIR/torchrun_2"
    echo "2-rank nccl training: ok"
fi

step "all device checks passed"
