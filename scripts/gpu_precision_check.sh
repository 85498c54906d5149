#!/usr/bin/env bash
# fp16 training validated against fp32: the same quick training on the same
# simulated data in both precisions, each bundle's inference on a second
# dataset, and the two reconstructions compared with its true object.
#
#   scripts/gpu_precision_check.sh PTYCHO_BINARY RESULTS_DIR [DEVICE] [WORK_DIR]
#
# DEVICE defaults to cuda; with cpu (a dry run on a machine without a GPU)
# only fp32 runs, one epoch. The datasets, bundles and reconstructions (tens
# of MB) go to WORK_DIR (default: RESULTS_DIR/work); RESULTS_DIR gets the
# small files: the comparison (metrics.csv, metrics.json, frc.csv,
# comparison.png) and each precision's history.csv.
set -euo pipefail
USAGE="usage: gpu_precision_check.sh PTYCHO_BINARY RESULTS_DIR [DEVICE] [WORK_DIR]"
BIN=${1:?$USAGE}
R=${2:?$USAGE}
DEVICE=${3:-cuda}
D=${4:-$R/work}
mkdir -p "$R" "$D"
if [ "$DEVICE" = cpu ]; then
    PRECISIONS="fp32"; EXTRA=(--epochs 1 --n-groups 64)
else
    PRECISIONS="fp32 fp16"; EXTRA=()
fi
"$BIN" simulate --out "$D/train.npz" --seed 1 --device "$DEVICE"
"$BIN" simulate --out "$D/test.npz" --seed 2 --device "$DEVICE"
recons=()
for p in $PRECISIONS; do
    start=$SECONDS
    "$BIN" train --train "$D/train.npz" --preset quick --device "$DEVICE" --precision "$p" \
        "${EXTRA[@]}" --seed 3 --out "$D/$p"
    echo "train $p: $((SECONDS - start)) s"
    cp "$D/$p/history.csv" "$R/history-$p.csv"
    "$BIN" infer --bundle "$D/$p/wts.h5.zip" --data "$D/test.npz" --out "$D/$p.npz" --device "$DEVICE"
    recons+=(--recon "$D/$p.npz" --label "$p")
done
"$BIN" compare --truth "$D/test.npz" "${recons[@]}" --out "$R"
cat "$R/metrics.csv"
for p in $PRECISIONS; do
    echo "== $p: last epochs of history.csv"
    tail -n 3 "$R/history-$p.csv"
done
