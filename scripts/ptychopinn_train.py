#!/usr/bin/env python3
"""Trains PtychoPINN's own TensorFlow PINN on one of our datasets and saves
its own bundle (OUT_DIR/wts.h5.zip), for comparisons with ours
(docs/ptychopinn.md). Runs in the optional environment of
`make ptychopinn-env`, with PtychoPINN's source tree on PYTHONPATH:

    PYTHONPATH=$PTYCHOPINN_SRC .venv-ptychopinn/bin/python scripts/ptychopinn_train.py \\
        DATA.npz OUT_DIR [--gridsize 1] [--epochs 20] [--n-groups 1024] [--filters 2] [--batch 16] [--seed 1]

Everything else is PtychoPINN's default (N from the data; nphotons from the
dataset's metadata, as its own training script does). Prints the final
losses and the seconds per epoch.
"""
import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--gridsize", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--n-groups", type=int, default=1024)
    ap.add_argument("--filters", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.gridsize == 2 and a.batch * 4 >= 64:
        ap.error("PtychoPINN merges a gridsize-2 batch when batch·4 ≥ 64: use --batch 15 or less")

    import tensorflow as tf
    from ptycho import model_manager, params
    from ptycho.config.config import ModelConfig, TrainingConfig, update_legacy_dict
    from ptycho.workflows import components

    d = np.load(a.data)
    meta = json.loads(str(d["_metadata"])) if "_metadata" in d.files else {}
    n = d["diffraction"].shape[-1]
    tf.keras.utils.set_random_seed(a.seed)
    cfg = TrainingConfig(
        model=ModelConfig(N=n, gridsize=a.gridsize, n_filters_scale=a.filters),
        train_data_file=a.data,
        nepochs=a.epochs,
        batch_size=a.batch,
        n_groups=a.n_groups,
        nphotons=float(meta.get("nphotons", meta.get("n_photons", 1e9))),
        output_dir=a.out,
    )
    update_legacy_dict(params.cfg, cfg)
    raw = components.load_data(str(a.data), n_images=a.n_groups)
    start = time.perf_counter()
    result = components.train_cdi_model(raw, None, cfg)
    seconds = time.perf_counter() - start
    a.out.mkdir(parents=True, exist_ok=True)
    model_manager.save(str(a.out))
    history = result.get("history") or {}
    last = {k: float(v[-1]) for k, v in history.items() if isinstance(v, list) and v}
    print(json.dumps({"bundle": str(a.out / "wts.h5.zip"), "seconds": seconds,
                      "seconds_per_epoch": seconds / a.epochs, "final": last}))


if __name__ == "__main__":
    main()
