#!/usr/bin/env bash
# fp16 and bf16 training validated against fp32: the same quick training
# (gridsize 2) on the top half of the quickstart dataset in each precision,
# each bundle's inference on the bottom half (in fp32, and a reduced-
# precision bundle also in its own precision), and the reconstructions
# compared with its true object.
#
#   scripts/gpu_precision_check.sh PTYCHO_BINARY RESULTS_DIR [DEVICE] [WORK_DIR]
#
# DEVICE defaults to cuda; with cpu fp32 and bf16 run (fp16 autocast is
# CUDA's), one epoch on 64 groups (a dry run), or the whole quick preset
# with PTYCHO_PRECISION_FULL=1 (bf16 validated on the CPU, minutes). The
# datasets, bundles and reconstructions (tens of MB) go to WORK_DIR
# (default: RESULTS_DIR/work); RESULTS_DIR gets the small files: the
# comparison (metrics.csv, metrics.json, frc.csv, comparison.png) and each
# precision's history.csv.
set -euo pipefail
USAGE="usage: gpu_precision_check.sh PTYCHO_BINARY RESULTS_DIR [DEVICE] [WORK_DIR]"
BIN=${1:?$USAGE}
R=${2:?$USAGE}
DEVICE=${3:-cuda}
D=${4:-$R/work}
mkdir -p "$R" "$D"
if [ "$DEVICE" = cpu ]; then
    PRECISIONS="fp32 bf16"; EXTRA=(--epochs 1 --n-groups 64)
    [ "${PTYCHO_PRECISION_FULL:-0}" = 1 ] && EXTRA=()
else
    PRECISIONS="fp32 fp16 bf16"; EXTRA=()
fi
# the quickstart dataset (2048 random positions), top half trains
HERE=$(cd "$(dirname "$0")/.." && pwd)
"$BIN" simulate --config "$HERE/data/sim/quickstart.toml" --out "$D/all.npz" --device "$DEVICE"
"$BIN" dataset split --input "$D/all.npz" --train "$D/train.npz" --test "$D/test.npz"
recons=()
for p in $PRECISIONS; do
    start=$SECONDS
    "$BIN" train --train "$D/train.npz" --preset quick --gridsize 2 --device "$DEVICE" --precision "$p" \
        "${EXTRA[@]}" --seed 3 --out "$D/$p"
    echo "train $p: $((SECONDS - start)) s"
    cp "$D/$p/history.csv" "$R/history-$p.csv"
    "$BIN" infer --bundle "$D/$p/wts.h5.zip" --data "$D/test.npz" --out "$D/$p.npz" --device "$DEVICE"
    recons+=(--recon "$D/$p.npz" --label "$p")
    if [ "$p" != fp32 ]; then
        # the same bundle inferred in its own precision, against the above
        "$BIN" infer --bundle "$D/$p/wts.h5.zip" --data "$D/test.npz" --out "$D/$p-infer-$p.npz" \
            --device "$DEVICE" --precision "$p"
        recons+=(--recon "$D/$p-infer-$p.npz" --label "$p-infer-$p")
    fi
done
"$BIN" compare --truth "$D/test.npz" "${recons[@]}" --out "$R"
cat "$R/metrics.csv"
for p in $PRECISIONS; do
    echo "== $p: last epochs of history.csv"
    tail -n 3 "$R/history-$p.csv"
done
