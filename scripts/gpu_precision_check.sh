#!/usr/bin/env bash
# fp16 training validated against fp32: the same quick training on the same
# simulated data in both precisions, each bundle's inference on a second
# dataset, and the two reconstructions compared with its true object.
#
#   scripts/gpu_precision_check.sh PTYCHO_BINARY RESULTS_DIR [DEVICE]
#
# DEVICE defaults to cuda; with cpu (a dry run on a machine without a GPU)
# only fp32 runs, one epoch.
set -euo pipefail
BIN=${1:?usage: gpu_precision_check.sh PTYCHO_BINARY RESULTS_DIR [DEVICE]}
D=${2:?usage: gpu_precision_check.sh PTYCHO_BINARY RESULTS_DIR [DEVICE]}
DEVICE=${3:-cuda}
mkdir -p "$D"
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
    "$BIN" infer --bundle "$D/$p/wts.h5.zip" --data "$D/test.npz" --out "$D/$p.npz" --device "$DEVICE"
    recons+=(--recon "$D/$p.npz" --label "$p")
done
"$BIN" compare --truth "$D/test.npz" "${recons[@]}" --out "$D/compare"
for p in $PRECISIONS; do
    echo "== $p: last epochs of history.csv"
    tail -n 3 "$D/$p/history.csv"
done
