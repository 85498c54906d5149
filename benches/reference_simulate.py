#!/usr/bin/env python3
"""Vectorised numpy reference for `ptycho bench simulate`.

Does the same work as the Rust simulation (DESIGN §3): a random-lines object,
a zone-plate probe propagated to a defocus, a raster (integer positions) or
uniform random (fractional, bilinear) scan, exit waves, orthonormal FFT
amplitudes with the zero frequency centred, and Poisson noise at a dose.
Single precision where numpy allows it (numpy >= 2 keeps complex64 FFTs).
Prints JSON: {"seconds": [...], "peak_rss_mb": ...}.
"""
import argparse
import json
import time

import numpy as np


def lines_object(side, count, width, rng):
    img = np.zeros((side, side), np.float32)
    reach = 6 * width
    for _ in range(count):
        cx, cy = rng.uniform(0, side, 2)
        angle = rng.uniform(0, np.pi)
        half = 0.5 * side * rng.uniform(0.1, 0.6)
        dx, dy = half * np.cos(angle), half * np.sin(angle)
        ax, ay = cx - dx, cy - dy
        # only the bounding box of the segment, widened by 6σ
        x0 = max(int(np.floor(min(ax, cx + dx) - reach)), 0)
        x1 = min(int(np.ceil(max(ax, cx + dx) + reach)), side - 1)
        y0 = max(int(np.floor(min(ay, cy + dy) - reach)), 0)
        y1 = min(int(np.ceil(max(ay, cy + dy) + reach)), side - 1)
        if x1 < x0 or y1 < y0:
            continue
        y, x = np.mgrid[y0:y1 + 1, x0:x1 + 1].astype(np.float64)
        t = np.clip(((x - ax) * 2 * dx + (y - ay) * 2 * dy) / (4 * half * half), 0, 1)
        d2 = (x - ax - t * 2 * dx) ** 2 + (y - ay - t * 2 * dy) ** 2
        img[y0:y1 + 1, x0:x1 + 1] += np.exp(-d2 / (2 * width * width))
    m = np.clip(img, 0, 1)
    amp = 0.5 + 0.5 * m
    phase = (np.pi / 2) * (2 * m - 1)
    return (amp * np.exp(1j * phase)).astype(np.complex64)


def zone_plate_probe(n, dx, energy_ev=8000.0, zone_m=50e-9, stop=0.4, defocus_m=120e-6):
    lam = 1.239841984e-6 / energy_ev
    f = np.fft.fftfreq(n, dx)
    f2 = f[:, None] ** 2 + f[None, :] ** 2
    fmax = 1 / (2 * zone_m)
    pupil = ((f2 <= fmax**2) & (f2 >= (stop * fmax) ** 2)).astype(np.float64)
    field = np.fft.fftshift(np.fft.ifft2(pupil * np.exp(-1j * np.pi * lam * defocus_m * f2)))
    return (field / np.abs(field).max()).astype(np.complex64)


def positions(kind, side, n, count, spacing, rng):
    lo, hi = n // 2, side - n // 2 - 1
    if kind == "raster":
        k = int(np.floor((hi - lo) / spacing)) + 1
        start = lo + np.floor(((hi - lo) - (k - 1) * spacing) / 2)
        axis = start + spacing * np.arange(k)
        yy, xx = np.meshgrid(axis, axis, indexing="ij")
        return np.stack([xx.ravel(), yy.ravel()], 1)[:count]
    return rng.uniform(lo, hi, size=(count, 2))


def extract(obj, pos, n):
    h, w = obj.shape
    x0 = np.floor(pos[:, 0]).astype(np.int64)
    y0 = np.floor(pos[:, 1]).astype(np.int64)
    fx = (pos[:, 0] - x0).astype(np.float32)[:, None, None]
    fy = (pos[:, 1] - y0).astype(np.float32)[:, None, None]
    off = np.arange(n) - n // 2
    rows = y0[:, None] + off[None, :]
    cols = x0[:, None] + off[None, :]
    if not (fx.any() or fy.any()):
        return obj[rows[:, :, None], cols[:, None, :]]
    out = np.zeros((len(pos), n, n), np.complex64)
    for dr, dc, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        out += obj[np.clip(rows + dr, 0, h - 1)[:, :, None], np.clip(cols + dc, 0, w - 1)[:, None, :]] * wgt
    return out


def simulate(args, seed):
    rng = np.random.default_rng(seed)
    n = args.size
    dx = 1.239841984e-6 / 8000.0 * 0.5 / (n * 75e-6)
    obj = lines_object(args.object_size, 100, 1.0, rng)
    probe = zone_plate_probe(n, dx)
    pos = positions(args.scan, args.object_size, n, args.n_images, args.spacing, rng)
    amp = np.empty((len(pos), n, n), np.float32)
    for s in range(0, len(pos), 512):
        psi = extract(obj, pos[s:s + 512], n) * probe
        amp[s:s + 512] = np.fft.fftshift(np.abs(np.fft.fft2(psi, norm="ortho")), axes=(-2, -1))
    scale = np.sqrt(args.dose / np.mean(np.sum(amp.astype(np.float64) ** 2, axis=(1, 2))))
    counts = rng.poisson((scale * amp.astype(np.float64)) ** 2)
    return (np.sqrt(counts) / scale).astype(np.float32)


def peak_rss_mb():
    # VmHWM of this process (ru_maxrss would include the parent's, kept across exec)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    return float("nan")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--scan", choices=["raster", "random"], default="raster")
    p.add_argument("--n-images", type=int, default=4096)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--object-size", type=int, default=321)
    p.add_argument("--spacing", type=float, default=4.0)
    p.add_argument("--dose", type=float, default=1e6)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    simulate(argparse.Namespace(**{**vars(args), "n_images": 64}), 0)  # warm-up
    seconds = []
    for r in range(args.repeats):
        t = time.perf_counter()
        x = simulate(args, r)
        seconds.append(time.perf_counter() - t)
        assert x.shape[0] == args.n_images, x.shape
    peak = peak_rss_mb()
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak}))


if __name__ == "__main__":
    main()
