#!/usr/bin/env bash
# One short GPU check, for a machine with CUDA, PyTorch and no Rust toolchain.
#
#   scripts/gpu_check.sh RESULTS_DIR TORCH_LIB_DIR [PTYCHO_BINARY] [PYTHON]
#
# RESULTS_DIR    where every figure and log goes (created)
# TORCH_LIB_DIR  the machine's own libtorch folder (e.g. …/site-packages/torch/lib),
#                the same torch version the binary was built against
# PTYCHO_BINARY  a release `ptycho` built elsewhere (default: ./ptycho, then
#                target/release/ptycho); strip it to keep what is sent small
# PYTHON         a python with torch, numpy, scipy, scikit-image (default: python3)
#
# A binary built on another machine: pack it with scripts/pack_binary.sh and
# give the packed launcher (PACK_DIR/ptycho) as PTYCHO_BINARY.
#
# Steps, each logged to RESULTS_DIR/<step>.log (a failing step is recorded
# and the others go on; the exit status is non-zero if any failed; a step
# that runs past PTYCHO_STEP_TIMEOUT seconds, 300 by default, is stopped and
# counts as failed; once PTYCHO_GPU_BUDGET seconds in all, 540 by default,
# are spent, the steps left are skipped, so the table is printed within a
# call's time limit):
#  1. nvidia-smi and the binary's view of CUDA (`ptycho bench` needs it);
#  2. a few training steps on CPU and on CUDA from the same seed, losses and
#     first gradients compared (cuDNN off; cuDNN with TF32 off; defaults);
#     fp16 and bf16 training validated against fp32 (scripts/gpu_precision_check.sh:
#     the same quick training in each, reconstructions compared, and fp16 and
#     bf16 inference of those bundles against their fp32 inference; its bundles
#     and datasets go to a scratch folder, its metrics to RESULTS_DIR/precision);
#  3. training throughput, batch 16 (three rounds) / 64 / 256, fp32 (libtorch's defaults: TF32
#     convolutions), and fp16 and bf16 autocast, against the plain-PyTorch reference on
#     the same GPU (FLOP/s as a fraction of the measured matmul peak), both
#     with cuDNN's autotuner on, and at batch 64 with it off on both sides
#     (PyTorch's default), in fp32-strict (TF32 off on both sides) and with
#     our activations in NCHW (PTYCHO_CHANNELS_LAST=0) instead of channels-last;
#  4. inference positions/s at N = 64 and N = 128 (fp32; N = 64 also fp16, bf16);
#  5. the iterative solver and stitching on the GPU;
#  6. the whole suite (`bench all --quick`), its JSON record in RESULTS_DIR/suite;
# and prints a short table last (RESULTS_DIR/summary.txt).
set -uo pipefail

RESULTS=${1:?usage: gpu_check.sh RESULTS_DIR TORCH_LIB_DIR [PTYCHO_BINARY] [PYTHON]}
TORCH_LIB=${2:?usage: gpu_check.sh RESULTS_DIR TORCH_LIB_DIR [PTYCHO_BINARY] [PYTHON]}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=${3:-}
if [ -z "$BIN" ]; then
    for c in "$HERE/ptycho" "$HERE/target/release/ptycho"; do
        [ -x "$c" ] && BIN=$c && break
    done
fi
[ -x "${BIN:-}" ] || { echo "no ptycho binary (give its path as the third argument)" >&2; exit 2; }
PY=${4:-python3}
DEVICE=${PTYCHO_GPU_DEVICE:-cuda}
STEP_TIMEOUT=${PTYCHO_STEP_TIMEOUT:-300}
BUDGET=${PTYCHO_GPU_BUDGET:-540}
# PTYCHO_GPU_DEVICE=cpu tries the script on a machine without a GPU, at
# sizes a CPU finishes in minutes
if [ "$DEVICE" = cpu ]; then
    BATCHES="16"; STEPS=2; INFER64=64; INFER128=16; PATCHES=4096
else
    BATCHES="16 64 256"; STEPS=20; INFER64=4096; INFER128=1024; PATCHES=65536
fi

mkdir -p "$RESULTS"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PTYCHO_PYTHON="$PY"
export OMP_WAIT_POLICY=passive
# the binary finds benches/*.py next to the repository it was built from;
# on the GPU machine that is this checkout
export PTYCHO_BENCHES="$HERE/benches"
FAILED=0

step() {
    local name=$1; shift
    local t0=$SECONDS
    # what is left of the budget, less 10 s for the table
    local left=$((BUDGET - SECONDS - 10))
    if [ "$left" -lt 20 ]; then
        echo "skipped $name (the budget of $BUDGET s is spent)" | tee -a "$RESULTS/steps.txt"
        return
    fi
    local limit=$((left < STEP_TIMEOUT ? left : STEP_TIMEOUT))
    if timeout "$limit" "$@" >"$RESULTS/$name.log" 2>&1; then
        echo "ok      $name ($((SECONDS - t0)) s)" | tee -a "$RESULTS/steps.txt"
    else
        echo "FAILED  $name ($((SECONDS - t0)) s): see $name.log" | tee -a "$RESULTS/steps.txt"
        FAILED=1
    fi
}

: >"$RESULTS/steps.txt"
step environment bash -c "nvidia-smi; '$PY' -c 'import torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0))'; '$BIN' --version"
step same-seed "$BIN" bench same-seed --device "$DEVICE" --out "$RESULTS/same_seed.json"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
step precision "$HERE/scripts/gpu_precision_check.sh" "$BIN" "$RESULTS/precision" "$DEVICE" "$SCRATCH/precision"
for batch in $BATCHES; do
    # batch 16 is bound by the host's launches on both sides, and the
    # reference's rate moved 1.6x between invocations there: three
    # alternating rounds (the reference a fresh process each), the median ratio
    rounds=1
    [ "$batch" = 16 ] && [ "$DEVICE" != cpu ] && rounds=3
    step "train-b$batch-fp32" "$BIN" bench train --device "$DEVICE" --batch-size "$batch" --steps "$STEPS" --rounds "$rounds" --json
done
if [ "$DEVICE" != cpu ]; then  # fp16 autocast and cuDNN are CUDA's
    # both sides with cuDNN's autotuner off (PyTorch's default; ours turns it on)
    step train-b64-fp32-untuned env PTYCHO_CUDNN_BENCHMARK=0 "$BIN" bench train --device "$DEVICE" --batch-size 64 --steps "$STEPS" --rounds 1 --json
    step train-b64-fp16 "$BIN" bench train --device "$DEVICE" --batch-size 64 --steps "$STEPS" --rounds 1 --precision fp16 --json
    step train-b64-bf16 "$BIN" bench train --device "$DEVICE" --batch-size 64 --steps "$STEPS" --rounds 1 --precision bf16 --json
    # TF32 off in cuDNN's convolutions on both sides (true float32 arithmetic)
    step train-b64-fp32-strict "$BIN" bench train --device "$DEVICE" --batch-size 64 --steps "$STEPS" --rounds 1 --precision fp32-strict --json
    # our activations in NCHW, as the reference's (channels-last is our default)
    step train-b64-fp32-nchw env PTYCHO_CHANNELS_LAST=0 "$BIN" bench train --device "$DEVICE" --batch-size 64 --steps "$STEPS" --rounds 1 --json
else  # bf16 autocast runs on the CPU too
    step train-b16-bf16 "$BIN" bench train --device "$DEVICE" --batch-size 16 --steps "$STEPS" --rounds 1 --precision bf16 --json
fi
step infer-n64 "$BIN" bench infer --device "$DEVICE" --n 64 --batch-size "$INFER64" --batches 10 --rounds 1 --json
step infer-n128 "$BIN" bench infer --device "$DEVICE" --n 128 --batch-size "$INFER128" --batches 10 --rounds 1 --json
if [ "$DEVICE" != cpu ]; then
    step infer-n64-fp16 "$BIN" bench infer --device "$DEVICE" --n 64 --batch-size "$INFER64" --batches 10 --rounds 1 --precision fp16 --json
fi
step infer-n64-bf16 "$BIN" bench infer --device "$DEVICE" --n 64 --batch-size "$INFER64" --batches 10 --rounds 1 --precision bf16 --json
step iterative "$BIN" bench iterative --device "$DEVICE" --iterations 20 --rounds 1 --json
step stitch "$BIN" bench stitch --device "$DEVICE" --patches "$PATCHES" --rounds 1 --json
step suite "$BIN" bench all --device "$DEVICE" --quick --results "$RESULTS/suite"

# the short table: one line per benchmark row of every JSON log
"$PY" - "$RESULTS" >"$RESULTS/summary.txt" <<'EOF'
import json, pathlib, sys
d = pathlib.Path(sys.argv[1])
print(f"{'benchmark':<52} {'ours':>12} {'reference':>12} {'unit':<12} {'ratio':>7} {'TFLOP/s':>8} {'peak':>6}")
for log in sorted(d.glob("*.log")):
    text = log.read_text()
    # the JSON array begins on a line of its own, after any progress lines
    # (the index in "\n" + text of "\n[\n" is the index of "[" in text)
    start = ("\n" + text).rfind("\n[\n")
    try:
        rows = json.loads(text[start:]) if start >= 0 else []
    except json.JSONDecodeError:
        continue
    for r in rows if isinstance(rows, list) else []:
        f = r.get("flops_per_unit")
        fl = f"{f * r['ours'] / 1e12:.2f}" if f else "-"
        p = r.get("peak_fraction")
        pk = f"{100 * p:.0f}%" if p else "-"
        print(f"{r['name']:<52} {r['ours']:>12.1f} {r['reference']:>12.1f} {r['unit']:<12} {r['ratio']:>6.2f}x {fl:>8} {pk:>6}")
same = d / "same_seed.json"
if same.exists():
    s = json.loads(same.read_text())
    print(f"same seed, CPU losses {['%.6g' % l for l in s['cpu_losses']]} (learning rate {s['learning_rate']})")
    for r in s["runs"]:
        print(f"  {s['device']} cuDNN {'on ' if r['cudnn'] else 'off'}{' TF32' if r.get('tf32') else ''}: first loss {r['first_loss_relative_difference']:.2e}, "
              f"first gradient {r['gradient_relative_difference']:.2e}, losses up to {r['max_loss_relative_difference']:.2e} "
              f"(relative): {['%.6g' % l for l in r['device_losses']]}")
EOF
# fp16 and bf16 against fp32: the reconstructions' metrics (one row per
# precision of training, and per reduced-precision inference)
if [ -s "$RESULTS/precision/metrics.csv" ]; then
    echo "precision check, reconstructions of the quickstart dataset's bottom half against its true object:" >>"$RESULTS/summary.txt"
    cat "$RESULTS/precision/metrics.csv" >>"$RESULTS/summary.txt"
fi
# and the suite's own table, with the measured matmul peak
sed -n '/^benchmark /,$p' "$RESULTS/suite.log" >>"$RESULTS/summary.txt" 2>/dev/null
cat "$RESULTS/summary.txt"   # (the steps were printed as they ended)
exit $FAILED
