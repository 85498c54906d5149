#!/usr/bin/env python3
"""Runs Ptychodus 1.7's PtychoPINN (TensorFlow) reconstructor on a bundle we
exported (`ptycho bundle export-ptychopinn`), headless: the same child-side
entry point Ptychodus's GUI runs (`ptychodus.model.ptychopinn._subprocess.
run_reconstruct`: PtychoPINN's `load_inference_bundle`, prediction,
`reassemble_position`), fed a Ptychodus product we wrote
(`ptycho export product`) and the dataset's patterns.

    PYTHONPATH=$PTYCHOPINN_SRC .venv-ptychopinn/bin/python scripts/ptychodus_pinn_check.py \\
        BUNDLE_DIR PRODUCT.h5 DATA.npz OUT.npz

BUNDLE_DIR holds the exported wts.h5.zip. PTYCHODUS_SQUEEZE_PROBE=1 passes
a one-mode probe to PtychoPINN as [N, N] (Ptychodus 1.7 gives [1, N, N],
which PtychoPINN 712c23f's RawData refuses); PTYCHO_MODEL_CONFIG (JSON:
gridsize, n_filters_scale, amp_activation) describes the network. Writes the object Ptychodus's
reconstructor returns to OUT.npz (`object`, complex64) and prints one JSON
line (its shape, whether it is finite).
"""
import json
import os
import pickle
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402


class Collect:
    """Stands in for the multiprocessing queue the GUI's parent reads."""

    def __init__(self):
        self.items = []

    def put(self, item):
        self.items.append(item)


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit("usage: ptychodus_pinn_check.py BUNDLE_DIR PRODUCT.h5 DATA.npz OUT.npz")
    bundle_dir, product_path, data_path, out = (Path(a) for a in sys.argv[1:])
    from ptycho.config.config import InferenceConfig, ModelConfig
    from ptychodus.api.io import load_product
    from ptychodus.api.reconstruct import ReconstructInput, ReconstructOutput
    from ptychodus.model.ptychopinn._payload import ReconstructPayload
    from ptychodus.model.ptychopinn._subprocess import run_reconstruct

    if not (bundle_dir / "wts.h5.zip").is_file():
        sys.exit(f"{bundle_dir} has no wts.h5.zip")
    manifest_cfg = json.loads(os.environ.get("PTYCHO_MODEL_CONFIG", "{}"))
    product = load_product(product_path)
    d = np.load(data_path)
    patterns = d["diffraction"].astype(np.float32)
    n = patterns.shape[-1]
    model = ModelConfig(
        N=n,
        gridsize=int(manifest_cfg.get("gridsize", 1)),
        n_filters_scale=int(manifest_cfg.get("n_filters_scale", 2)),
        amp_activation=manifest_cfg.get("amp_activation", "sigmoid"),
        object_big=True,
        probe_big=True,
        probe_mask=False,
    )
    payload = ReconstructPayload(
        inference_config=InferenceConfig(model=model, model_path=Path(), test_data_file=Path(),
                                         output_dir=Path()),
        model_bundle_dir=bundle_dir,
        n_nearest_neighbors=7,
        n_samples=len(patterns),  # every position a group (gridsize 1)
        reconstruct_input=ReconstructInput(
            diffraction_patterns=patterns,
            bad_pixels=np.zeros((n, n), dtype=bool),
            product=product,
        ),
    )
    # Ptychodus 1.7 hands PtychoPINN its probe as [modes, N, N] (here one
    # mode), and PtychoPINN (712c23f) asserts a 2-D probe: a mismatch between
    # the two releases, met after the bundle has loaded. With --squeeze-probe
    # the single mode is passed as [N, N]; nothing else is changed.
    if os.environ.get("PTYCHODUS_SQUEEZE_PROBE") == "1":
        from ptycho.raw_data import RawData

        original = RawData.from_coords_without_pc

        def squeezed(*args, probeGuess=None, **kwargs):
            if probeGuess is not None and probeGuess.ndim == 3 and probeGuess.shape[0] == 1:
                probeGuess = probeGuess[0]
            return original(*args, probeGuess=probeGuess, **kwargs)

        RawData.from_coords_without_pc = staticmethod(squeezed)
    queue = Collect()
    run_reconstruct(payload, queue)
    outputs = [pickle.loads(blob) for _, blob in queue.items]
    result = next(o for o in outputs if isinstance(o, ReconstructOutput))
    obj = np.asarray(result.product.object_.get_layer(0)).astype(np.complex64)
    np.savez(out, object=obj)
    print(json.dumps({"object_shape": list(obj.shape), "finite": bool(np.isfinite(obj).all()),
                      "amplitude_mean": float(np.abs(obj).mean())}))


if __name__ == "__main__":
    main()
