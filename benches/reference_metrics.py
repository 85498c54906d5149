#!/usr/bin/env python3
"""Reference for `ptycho bench metrics`: SSIM (scikit-image's
structural_similarity with a Gaussian window, σ = 1.5, no sample covariance)
and an FRC curve (numpy: FFTs, ring sums with bincount) of two random
side×side images, the same work as `metrics::ssim` + `metrics::frc`.
Prints JSON: {"seconds": [...]} (one SSIM + one FRC per entry)."""
import argparse
import json
import time

import numpy as np
from skimage.metrics import structural_similarity


def frc(a, b):
    fa, fb = np.fft.fftshift(np.fft.fft2(a)), np.fft.fftshift(np.fft.fft2(b))
    h, w = a.shape
    yy, xx = np.indices((h, w))
    r = np.rint(np.hypot(yy - h // 2, xx - w // 2)).astype(int).ravel()
    num = np.bincount(r, np.real(fa * np.conj(fb)).ravel())
    den = np.sqrt(np.bincount(r, (np.abs(fa) ** 2).ravel()) * np.bincount(r, (np.abs(fb) ** 2).ravel()))
    return num / np.maximum(den, 1e-30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    a = rng.random((args.side, args.side))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
        frc(a, b)
        times.append(time.perf_counter() - t)
    print(json.dumps({"seconds": times}))


if __name__ == "__main__":
    main()
