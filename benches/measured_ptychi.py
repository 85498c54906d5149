#!/usr/bin/env python3
"""pty-chi 2.2 LSQML on a measured scan in our dataset NPZ format: object, probe
(all incoherent modes) and optionally positions refined; the external reference
for `ptycho reconstruct` on docs/measured.md's scans.

Not a CI dependency: run it with the separate peer venv,
`.venv-peers/bin/python benches/measured_ptychi.py DATA.npz --epochs 100 --out OUT.npz
[--refine-positions] [--probe-modes K] [--threads 2]`
(`python3 -m venv .venv-peers && .venv-peers/bin/pip install ptychi==2.2.0`).

Conventions (docs/formats.md, docs/physics.md, pty-chi 2.2 source):
- intensities: our `diffraction` holds amplitudes A with |FFT2_ortho(Σ P_k·patch)|²
  summed over modes = A² and the zero frequency at (N/2, N/2). pty-chi's far
  field is the unnormalised FFT (`FourierPropagator(norm=None)`) and, with
  `fft_shift=True`, it fftshifts the given data (index N/2 → 0), so it is
  given I = (N·A)²; with that scale pty-chi's probe is in our amplitude
  normalisation (Σ_k Σ|P_k|² = mean counts for an imported scan) and is
  written back unchanged. pty-chi then rescales the probe once in epoch 0
  (`rescale_probe_intensity_in_first_epoch`, Σ I_measured / Σ I_predicted)
  and every 10 epochs moves a common factor between object and probe
  (`remove_object_probe_ambiguity`: mean object transmission ≈ 1), so the
  final probe power need not equal the initial one (--no-probe turns both
  off: the probe is then exactly the given one).
- positions: our (x, y) is a probe centre in object pixels: patch pixel
  (i, j) samples our object at (row y − N/2 + i, column x − N/2 + j). The
  object buffer given to pty-chi is our canvas (H, W) = (ceil(max y + N/2),
  ceil(max x + N/2)) (`canvas_shape`) padded by M = --margin-px on every side
  (room for corrected positions), shape (Hb, Wb) = (H + 2M, W + 2M); our
  pixel (r, c) is buffer pixel (r + M, c + M). pty-chi (default
  `determine_position_origin_coords_by=SUPPORT`) adds the origin
  o = round(S/2) − 0.5 per axis (round half to even, S the buffer side) to a
  position and samples the patch at buffer coordinates pos + o − (N−1)/2 + i
  (Fourier shift for the fraction); equating the two gives
  y_ptychi = y + M − round(Hb/2), x_ptychi = x + M − round(Wb/2), and back
  y = y_ptychi − M + round(Hb/2). pty-chi holds positions as (y, x) rows.
- object: starts at ones on the buffer; the output `object` is the buffer
  cropped to our canvas, `object[r, c] = buffer[r + M, c + M]` (pixels no
  probe reached stay 1).
- probe modes: K = --probe-modes (default: the file's number of modes,
  `probe_modes` [K, N, N] else `probeGuess`). More modes than the file has,
  from one given mode: pty-chi's own `utils.orthogonalize_initial_probe`
  (Hermite-polynomial secondary modes, 2 % of the power each, the first mode
  keeping the rest). Fewer: the first K. pty-chi orthogonalises the modes
  after every epoch (`orthogonalize_incoherent_modes`, SVD, its default).
- `coverage` (for `ptycho frc` / `compare --reference`): Σ_k |P_k|² of the
  final probe summed at the final positions (patches placed at the nearest
  integer top-left corner), like our solvers' `coverage`.

Everything else is pty-chi's LSQML default (Gaussian noise model, batch size
100, random batches, object/probe step sizes solved jointly, optimal step
scaler 0.9, probe refined from epoch 0 — epoch 0 only rescales the probe),
on the CPU, float32, `random_seed` = --seed. Position correction
(--refine-positions) uses `LSQMLProbePositionOptions`' defaults unless the
--pos-* flags say otherwise; the JSON records the options used.

Writes OUT.npz (`object` complex64 [H, W], `coverage` float32 [H, W],
`probe_modes` complex64 [K, N, N], `probe` = the first mode, `xcoords`,
`ycoords` float64: the final positions in our convention) and OUT.json
(`seconds`: wall time of the epochs only, `epochs`, settings, the final loss,
the loss per epoch and, when the dataset has true positions, the position
error per epoch).
"""
import argparse
import json
import logging
import math
import os
import sys
import time

import numpy as np


def canvas_shape(x, y, n):
    return int(math.ceil(y.max() + n / 2)), int(math.ceil(x.max() + n / 2))


def position_error(x, y, xt, yt):
    """RMS / median Euclidean error after removing the mean offset (px)."""
    dx = x - xt
    dy = y - yt
    dx = dx - dx.mean()
    dy = dy - dy.mean()
    e = np.hypot(dx, dy)
    return {
        "rms": float(np.sqrt(np.mean(e**2))),
        "median": float(np.median(e)),
        "under_1px": float(np.mean(e < 1)),
        "under_2px": float(np.mean(e < 2)),
    }


def coverage_map(probe_modes, x, y, shape):
    """Σ_k |P_k|² summed at each position (nearest whole-pixel top-left)."""
    n = probe_modes.shape[-1]
    power = (np.abs(probe_modes) ** 2).sum(0).astype(np.float64)
    h, w = shape
    cov = np.zeros((h + 2 * n, w + 2 * n))
    for xi, yi in zip(x, y):
        r0 = int(np.floor(yi - n / 2 + 0.5)) + n
        c0 = int(np.floor(xi - n / 2 + 0.5)) + n
        cov[r0:r0 + n, c0:c0 + n] += power
    return cov[n:n + h, n:n + w].astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("npz")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--out", required=True, help="OUT.npz (OUT.json beside it)")
    ap.add_argument("--refine-positions", action="store_true")
    ap.add_argument("--probe-modes", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=100, help="pty-chi's default is 100")
    ap.add_argument("--batching", choices=["random", "compact", "uniform"], default="random")
    ap.add_argument("--momentum", type=float, default=0.0,
                    help="LSQML momentum_acceleration_gain (object/probe); 0 = pty-chi's default")
    ap.add_argument("--margin-px", type=int, default=32)
    ap.add_argument("--canvas", type=int, nargs=2, metavar=("H", "W"),
                    help="a larger canvas than the dataset's (e.g. the full scan's, for two halves)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-probe", action="store_true",
                    help="keep the probe fixed (also no epoch-0 rescale, no ambiguity removal)")
    # Position-correction settings (None: pty-chi's default).
    ap.add_argument("--pos-step-size", type=float, default=None)
    ap.add_argument("--pos-limit", type=float, default=None,
                    help="update_magnitude_limit, px per update and axis (0 = none)")
    ap.add_argument("--pos-no-mad-clip", action="store_true",
                    help="clip_update_magnitude_by_mad = False")
    ap.add_argument("--pos-start", type=int, default=None, help="first epoch of position correction")
    ap.add_argument("--pos-type", choices=["gradient", "cross_correlation"], default=None)
    ap.add_argument("--pos-diff", choices=["fourier_differentiation", "gaussian", "fourier_shift", "nearest"],
                    default=None)
    ap.add_argument("--pos-momentum", type=float, default=None,
                    help="probe_position_options.momentum_acceleration_gain")
    ap.add_argument("--pos-constrain-mean", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    import ptychi
    import ptychi.api as api
    import ptychi.utils as putils
    from ptychi.api.task import PtychographyTask

    d = np.load(args.npz, allow_pickle=False)
    amp = d["diffraction"].astype(np.float64)
    n_img, n, _ = amp.shape
    x = d["xcoords"].astype(np.float64)
    y = d["ycoords"].astype(np.float64)
    truth = None
    if "xcoords_truth" in d.files:
        truth = (d["xcoords_truth"].astype(np.float64), d["ycoords_truth"].astype(np.float64))
    given = d["probe_modes"] if "probe_modes" in d.files else d["probeGuess"][None]
    given = given.astype(np.complex64)
    k0 = given.shape[0]
    k = args.probe_modes or k0
    if k <= k0:
        probe0 = given[:k][None].copy()
        probe_init = f"the file's first {k} of {k0} modes"
    elif k0 == 1:
        probe0 = np.zeros((1, k, n, n), np.complex64)
        probe0[0, 0] = given[0]
        probe0 = putils.orthogonalize_initial_probe(torch.from_numpy(probe0)).numpy()
        probe_init = f"1 given mode + {k - 1} from pty-chi's orthogonalize_initial_probe (Hermite, 2 % each)"
    else:
        sys.exit(f"--probe-modes {k}: adding modes to {k0} given ones is not supported")

    h, w = canvas_shape(x, y, n)
    if args.canvas:
        if args.canvas[0] < h or args.canvas[1] < w:
            sys.exit(f"--canvas {args.canvas} is smaller than the dataset's canvas {(h, w)}")
        h, w = args.canvas
    m = args.margin_px
    hb, wb = h + 2 * m, w + 2 * m
    # pty-chi's origin (SUPPORT): round(S/2) - 0.5, torch.round = half to even like np.round.
    off_y = m - float(np.round(hb / 2))
    off_x = m - float(np.round(wb / 2))
    intensity = ((n * amp) ** 2).astype(np.float32)

    o = api.LSQMLOptions()
    o.data_options.fft_shift = True
    # Far field: wavelength and pixel size only label the output here.
    o.data_options.wavelength_m = 1e-10
    o.object_options.pixel_size_m = 1e-8
    o.object_options.optimizable = True
    o.probe_options.optimizable = not args.no_probe
    if args.no_probe:
        # Truly fixed: no epoch-0 rescale, no object/probe factor exchange.
        o.reconstructor_options.rescale_probe_intensity_in_first_epoch = False
        o.object_options.remove_object_probe_ambiguity.enabled = False
    o.probe_position_options.optimizable = args.refine_positions
    pp = o.probe_position_options
    if args.pos_step_size is not None:
        pp.step_size = args.pos_step_size
    if args.pos_limit is not None:
        pp.correction_options.update_magnitude_limit = None if args.pos_limit == 0 else args.pos_limit
    if args.pos_no_mad_clip:
        pp.correction_options.clip_update_magnitude_by_mad = False
    if args.pos_start is not None:
        pp.optimization_plan.start = args.pos_start
    if args.pos_type is not None:
        pp.correction_options.correction_type = api.PositionCorrectionTypes[args.pos_type.upper()]
    if args.pos_diff is not None:
        pp.correction_options.differentiation_method = api.ImageGradientMethods[args.pos_diff.upper()]
    if args.pos_momentum is not None:
        pp.momentum_acceleration_gain = args.pos_momentum
    if args.pos_constrain_mean:
        pp.constrain_position_mean = True
    r = o.reconstructor_options
    r.num_epochs = args.epochs
    r.batch_size = args.batch_size
    r.batching_mode = api.BatchingModes[args.batching.upper()]
    r.momentum_acceleration_gain = args.momentum
    r.default_device = api.Devices.CPU
    r.random_seed = args.seed

    task = PtychographyTask(
        o,
        diffraction_data=intensity,
        object_data=np.ones((1, hb, wb), np.complex64),
        probe_data=probe0,
        probe_position_x_px=x + off_x,
        probe_position_y_px=y + off_y,
    )

    def current_positions():
        return (task.get_probe_positions_x(as_numpy=True).astype(np.float64) - off_x,
                task.get_probe_positions_y(as_numpy=True).astype(np.float64) - off_y)

    history = []
    seconds = 0.0
    err0 = position_error(x, y, *truth) if truth else None
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        task.run(n_epochs=1)
        seconds += time.perf_counter() - t0
        table = task.reconstructor.loss_tracker.table
        rec = {"epoch": epoch, "loss": float(table["loss"].iloc[-1]), "seconds": seconds}
        if truth:
            cx, cy = current_positions()
            rec["position_error"] = position_error(cx, cy, *truth)
        history.append(rec)
        if not args.quiet:
            extra = ""
            if truth:
                pe = rec["position_error"]
                extra = f"  pos rms {pe['rms']:.2f} median {pe['median']:.2f}"
            print(f"epoch {epoch:4d}  loss {rec['loss']:.5e}  {seconds:8.1f} s{extra}", flush=True)

    obj = task.get_data_to_cpu("object", as_numpy=True)[0]
    obj = obj[m:m + h, m:m + w].astype(np.complex64)
    probe = task.get_data_to_cpu("probe", as_numpy=True)[0].astype(np.complex64)
    fx, fy = current_positions()
    cov = coverage_map(probe, fx, fy, (h, w))
    np.savez(args.out, object=obj, coverage=cov, probe=probe[0], probe_modes=probe,
             xcoords=fx, ycoords=fy)

    mode_power = (np.abs(probe) ** 2).sum((-2, -1))
    out = {
        "peer": f"pty-chi {ptychi.__version__ if hasattr(ptychi, '__version__') else '2.2.0'} LSQML",
        "torch": torch.__version__,
        "data": os.path.abspath(args.npz),
        "epochs": args.epochs,
        "seconds": seconds,
        "seconds_per_epoch": seconds / args.epochs,
        "threads": args.threads,
        "load_average_at_end": os.getloadavg(),
        "n_patterns": n_img,
        "n": n,
        "canvas": [h, w],
        "buffer": [hb, wb],
        "margin_px": m,
        "position_offset_to_ptychi": {"x": off_x, "y": off_y},
        "probe_modes": k,
        "probe_init": probe_init,
        "probe_mode_power_fractions": (mode_power / mode_power.sum()).tolist(),
        "probe_power_initial": float((np.abs(probe0) ** 2).sum()),
        "probe_power_final": float(mode_power.sum()),
        "refine_positions": args.refine_positions,
        "refine_probe": not args.no_probe,
        "final_loss": history[-1]["loss"],
        "loss_definition": "pty-chi displayed loss MSE_SQRT: mean over pixels and patterns of "
                           "(sqrt(I_pred) - sqrt(I_meas))^2, I = (N*A)^2",
        "position_error_initial": err0,
        "position_error_final": history[-1].get("position_error"),
        "options": {
            "reconstructor": r.get_dict(),
            "object": o.object_options.get_dict(),
            "probe": o.probe_options.get_dict(),
            "probe_position": pp.get_dict(),
        },
        "history": history,
    }
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(out, f, indent=1, default=str)
    summary = {kk: out[kk] for kk in ("epochs", "seconds", "final_loss", "position_error_initial",
                                      "position_error_final", "probe_mode_power_fractions")}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
