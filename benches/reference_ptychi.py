#!/usr/bin/env python3
"""pty-chi 2.2 LSQML on one of our dataset NPZ files, as a peer for the
iterative solvers (`cargo run --release --example iterative_peer`).

Not a CI dependency: run it with the separate peer venv,
`.venv-peers/bin/python benches/reference_ptychi.py DATA.npz --epochs 20 100`
(`python3 -m venv .venv-peers && .venv-peers/bin/pip install ptychi==2.2.0`).

Conventions (docs/physics.md, pty-chi 2.2 source):
- our `diffraction` holds amplitudes A = |FFT2_ortho(P·patch)| with the zero
  frequency at (N/2, N/2); pty-chi's far field is the unnormalised FFT
  (`FourierPropagator(norm=None)`) and, with `fft_shift=True`, expects the
  zero frequency at the centre, so its intensities are I = |FFT2(ψ)|² = (N·A)²;
- our position (x, y) names the object pixel at patch index (N/2, N/2), i.e. the
  patch's top-left pixel is (x − N/2, y − N/2); pty-chi's patch top-left is
  pos + (W/2 − N/2, H/2 − N/2), hence x_ptychi = x − W/2, y_ptychi = y − H/2;
- the probe is the dataset's (true) probe, fixed; the object starts at ones on
  the dataset's object grid; positions are not refined.

The object error is the one of `ptycho_workbench::recon::iterative::object_error`:
crop to the positions' bounding box ± N/4, remove the best global complex factor
c = <O_rec, O_true>/<O_rec, O_rec>, then ||c·O_rec − O_true|| / ||O_true||.

Prints one JSON object: {"runs": [{"epochs", "seconds", "object_error", "loss"}, ...]}.
Each run starts from scratch; `seconds` is the wall time of `task.run()` only.
"""
import argparse
import json
import logging
import os
import time

import numpy as np


def object_error(rec, truth, x, y, n):
    h, w = truth.shape
    x0 = max(int(np.floor(x.min() - n / 4)), 0)
    x1 = min(int(np.ceil(x.max() + n / 4)), w - 1)
    y0 = max(int(np.floor(y.min() - n / 4)), 0)
    y1 = min(int(np.ceil(y.max() + n / 4)), h - 1)
    r = rec[y0:y1 + 1, x0:x1 + 1].astype(np.complex128)
    t = truth[y0:y1 + 1, x0:x1 + 1].astype(np.complex128)
    c = np.vdot(r, t) / np.vdot(r, r)
    return float(np.linalg.norm(c * r - t) / np.linalg.norm(t))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("npz")
    ap.add_argument("--epochs", type=int, nargs="+", default=[20, 100])
    ap.add_argument("--batch-size", type=int, default=100, help="pty-chi's default is 100")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", help="write the last run's object to this .npy")
    args = ap.parse_args()

    import warnings

    import torch

    warnings.filterwarnings("ignore")

    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    import ptychi.api as api
    from ptychi.api.task import PtychographyTask

    d = np.load(args.npz, allow_pickle=False)
    amp = d["diffraction"].astype(np.float64)
    n_img, n, _ = amp.shape
    x, y = d["xcoords"].astype(np.float64), d["ycoords"].astype(np.float64)
    probe = d["probeGuess"].astype(np.complex64)
    truth = d["objectGuess"].astype(np.complex64)
    h, w = truth.shape
    intensity = ((n * amp) ** 2).astype(np.float32)

    runs = []
    for epochs in args.epochs:
        o = api.LSQMLOptions()
        o.data_options.fft_shift = True
        o.data_options.wavelength_m = 1.5498e-10
        o.object_options.pixel_size_m = 1.6e-8
        o.object_options.optimizable = True
        o.object_options.optimizer = api.Optimizers.SGD
        o.object_options.step_size = 1
        o.probe_options.optimizable = False
        o.probe_position_options.optimizable = False
        o.reconstructor_options.num_epochs = epochs
        o.reconstructor_options.batch_size = args.batch_size
        o.reconstructor_options.default_device = api.Devices.CPU
        task = PtychographyTask(
            o,
            diffraction_data=intensity,
            object_data=np.ones((1, h, w), np.complex64),
            probe_data=probe[None, None],
            probe_position_x_px=x - w / 2,
            probe_position_y_px=y - h / 2,
        )
        t0 = time.perf_counter()
        task.run()
        seconds = time.perf_counter() - t0
        obj = task.get_data_to_cpu("object", as_numpy=True)[0]
        table = task.reconstructor.loss_tracker.table
        loss = float(table["loss"].iloc[-1]) if "loss" in table else None
        runs.append({
            "epochs": epochs,
            "batch_size": args.batch_size,
            "seconds": seconds,
            "object_error": object_error(obj, truth, x, y, n),
            "loss": loss,
        })
        if args.save:
            np.save(args.save, obj)
    print(json.dumps({"peer": "pty-chi 2.2.0 LSQML", "threads": args.threads, "runs": runs}))


if __name__ == "__main__":
    main()
