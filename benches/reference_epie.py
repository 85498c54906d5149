#!/usr/bin/env python3
"""numpy reference for `ptycho bench iterative`: the same batched ePIE/rPIE
as `recon::iterative` (src/recon/iterative/epie.rs), written with plain numpy
slicing.

For each mini-batch of positions, all computed from the same object O:
  Ψ̂_b = FFT2_ortho(P·O_b) (zero frequency centred), replaced by A_b·Ψ̂_b/|Ψ̂_b|;
  Δ_b = IFFT2_ortho(projected) − P·O_b;
  O ← O + α·Σ_b conj(P)·Δ_b / ((1 − w)·S + w·max S),  S = Σ_b |P|² at each window.
Positions are rounded to whole pixels and the object is padded so every
window fits, as on the Rust side. The probe is fixed.

Reads a dataset NPZ written by the workbench (diffraction amplitudes with the
zero frequency at (N/2, N/2), xcoords, ycoords, probeGuess, objectGuess) and
prints JSON: {"seconds": [...], "data_error": e} — wall time of `--iterations`
epochs per repeat, and the final `Σ(|Ψ̂| − A)²/ΣA²` of the last epoch."""
import argparse
import json
import time

import numpy as np


def windows(xs, ys, n, h, w):
    """Top-left corners of every window on a grid padded to hold them all."""
    rows = np.rint(ys).astype(int) - n // 2
    cols = np.rint(xs).astype(int) - n // 2
    top, left = max(0, -rows.min()), max(0, -cols.min())
    ph = top + max(h, rows.max() + n)
    pw = left + max(w, cols.max() + n)
    return rows + top, cols + left, (ph, pw)


def epie(amps, probe, rows, cols, shape, iterations, batch, max_weight, alpha, seed):
    n = probe.shape[0]
    obj = np.ones(shape, np.complex64)
    p2 = (np.abs(probe) ** 2).astype(np.float32)
    pc = np.conj(probe)
    rng = np.random.default_rng(seed)
    count = len(rows)
    total = float(np.sum(amps.astype(np.float64) ** 2))
    error = 0.0
    for _ in range(iterations):
        order = rng.permutation(count)
        error = 0.0
        for s in range(0, count, batch):
            members = order[s:s + batch]
            patches = np.stack([obj[rows[k]:rows[k] + n, cols[k]:cols[k] + n] for k in members])
            exit_waves = probe * patches
            spec = np.fft.fftshift(np.fft.fft2(exit_waves, norm="ortho"), axes=(-2, -1))
            mod = np.abs(spec)
            a = amps[members]
            error += float(np.sum((mod - a).astype(np.float64) ** 2))
            target = np.fft.ifft2(np.fft.ifftshift(spec * (a / np.maximum(mod, 1e-30)), axes=(-2, -1)), norm="ortho")
            delta = (target - exit_waves).astype(np.complex64)
            num = np.zeros(shape, np.complex64)
            illum = np.zeros(shape, np.float32)
            for d, k in zip(delta, members):
                num[rows[k]:rows[k] + n, cols[k]:cols[k] + n] += pc * d
                illum[rows[k]:rows[k] + n, cols[k]:cols[k] + n] += p2
            norm = (1.0 - max_weight) * illum + max_weight * illum.max()
            obj += alpha * num / np.maximum(norm, 1e-30)
    return obj, error / total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--max-weight", type=float, default=0.01)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with np.load(args.data) as z:
        amps = z["diffraction"].astype(np.float32)
        probe = z["probeGuess"].astype(np.complex64)
        xs, ys = z["xcoords"], z["ycoords"]
        h, w = z["objectGuess"].shape
    n = probe.shape[0]
    rows, cols, shape = windows(xs, ys, n, h, w)
    times, error = [], float("nan")
    for _ in range(args.repeats):
        t = time.perf_counter()
        _, error = epie(amps, probe, rows, cols, shape, args.iterations, args.batch, args.max_weight, args.alpha, 0)
        times.append(time.perf_counter() - t)
    print(json.dumps({"seconds": times, "data_error": error}))


if __name__ == "__main__":
    main()
