#!/usr/bin/env python3
"""numpy reference for `ptycho bench stitch`: the central M×M crop of each
complex N×N patch is added to an H×W canvas at a fractional position with
bilinear weights (four weighted slice additions per patch), with a coverage
map, then divided by the coverage. The same positions as the Rust side:
uniform in [N/2, side − N/2) from a seeded generator, so the sizes match.
Prints JSON: {"seconds": [...]}."""
import argparse
import json
import time

import numpy as np


def stitch_sum(patches, positions, crop, h, w):
    """Sum and coverage on an h×w canvas; crops reaching outside are clipped."""
    n = patches.shape[-1]
    s = n // 2 - crop // 2
    crops = patches[:, s:s + crop, s:s + crop]
    pad = crop + 2
    total = np.zeros((h + 2 * pad, w + 2 * pad), np.complex64)
    cover = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    ones = np.ones((crop, crop), np.float32)
    for c, (x, y) in zip(crops, positions):
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        r, q = y0 - crop // 2 + pad, x0 - crop // 2 + pad
        if r < 0 or q < 0 or r + crop + 1 > h + 2 * pad or q + crop + 1 > w + 2 * pad:
            continue  # entirely outside the canvas
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                wgt = np.float32(wy * wx)
                total[r + dy:r + dy + crop, q + dx:q + dx + crop] += wgt * c
                cover[r + dy:r + dy + crop, q + dx:q + dx + crop] += wgt * ones
    return total[pad:pad + h, pad:pad + w], cover[pad:pad + h, pad:pad + w]


def stitch(patches, positions, crop, h, w):
    total, cover = stitch_sum(patches, positions, crop, h, w)
    return np.where(cover > 1e-6, total / np.maximum(cover, 1e-6), 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--patches", type=int, default=4096)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--crop", type=int, default=20)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    b, n = args.patches, args.n
    patches = (rng.standard_normal((b, n, n)) + 1j * rng.standard_normal((b, n, n))).astype(np.complex64)
    positions = rng.uniform(n / 2, args.side - n / 2, size=(b, 2))
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        stitch(patches, positions, args.crop, args.side, args.side)
        times.append(time.perf_counter() - t)
    print(json.dumps({"seconds": times}))


if __name__ == "__main__":
    main()
