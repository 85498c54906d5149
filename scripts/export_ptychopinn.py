#!/usr/bin/env python3
"""Writes one of our bundles as a PtychoPINN `wts.h5.zip` with PtychoPINN's
own code, then opens it with PtychoPINN's `load_inference_bundle` and checks
that it predicts what our bundle predicts.

Called by `ptycho bundle export-ptychopinn` (which writes CHECK.npz: inputs
and our predictions); runs in the optional environment of
`make ptychopinn-env` with a PtychoPINN source tree on PYTHONPATH
(docs/ptychopinn.md):

    export_ptychopinn.py OURS.wts.h5.zip OUT/wts.h5.zip CHECK.npz

Our bundle is read as data only (JSON, safetensors, .npy); PtychoPINN's
pickles are written by PtychoPINN's saver and read back only by its loader,
from the file this script has just written. Prints one JSON line with the
comparison; exits 1 when a comparison exceeds 1e-4 (relative).
"""
import io
import json
import os
import shutil
import struct
import sys
import tempfile
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

TOLERANCE = 1e-4


def read_safetensors(raw: bytes) -> dict:
    """The safetensors format: u64 header length, JSON header, raw data."""
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    base = 8 + length
    dtypes = {"F32": np.float32, "F64": np.float64}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(raw[base + start:base + end], dtype=dtypes[meta["dtype"]]).reshape(meta["shape"])
    return out


def read_ours(path: Path):
    with zipfile.ZipFile(path) as z:
        manifest = json.loads(z.read("manifest.json"))
        weights = read_safetensors(z.read("diffraction_to_obj/weights.safetensors"))
        probe = np.load(io.BytesIO(z.read("probe.npy")), allow_pickle=False)
    return manifest, weights, probe


def exportable(cfg: dict) -> None:
    need = {
        "kind": "pinn",
        "phase_activation": "pi-tanh",
        "border_branch": True,
        "border_activation": "swish",
        "bottleneck_mixer": False,
        "overlap_frame": "centroid",
    }
    for key, want in need.items():
        if cfg.get(key, want) != want:
            sys.exit(f"not exportable: model_config.{key} = {cfg.get(key)!r}, PtychoPINN's network needs {want!r}")
    if cfg["n"] not in (64, 128):
        sys.exit(f"not exportable: N = {cfg['n']}; PtychoPINN's CNN takes N = 64, 128 or 256")


class Graph:
    """A functional model's config as a graph, walked from its `obj` layer
    back to its input, as our importer walks it (src/bundle/ptychopinn.rs)."""

    def __init__(self, config: dict):
        # a saved config.json wraps the functional config; get_config() does not
        layers = config["config"]["layers"] if "config" in config else config["layers"]
        self.layers = {layer["name"]: layer for layer in layers}

    def inputs(self, name: str) -> list:
        found = []

        def walk(v):
            if isinstance(v, dict):
                if v.get("class_name") == "__keras_tensor__":
                    found.append(v["config"]["keras_history"][0])
                else:
                    for x in v.values():
                        walk(x)
            elif isinstance(v, (list, tuple)):  # in memory, arguments are tuples
                for x in v:
                    walk(x)

        nodes = self.layers[name].get("inbound_nodes", [])
        if nodes:
            walk(nodes[0]["args"])
        return found

    def cls(self, name: str) -> str:
        return self.layers[name]["class_name"]

    def only(self, name: str, cls: str) -> str:
        (up,) = self.inputs(name)
        assert self.cls(up) == cls, (name, up, self.cls(up), cls)
        return up

    def double_conv(self, b: str):
        a = self.only(b, "Conv2D")
        (below,) = self.inputs(a)
        return (a, b), below

    def blocks(self, at: str, step: str):
        """The (conv_a, conv_b) pairs of a chain of double-conv → `step`
        blocks ending at `at`, in input-to-output order, and the layer
        feeding the first."""
        pairs = []
        while self.cls(at) == step:
            pair, at = self.double_conv(self.only(at, "Conv2D"))
            pairs.append(pair)
        return pairs[::-1], at

    @staticmethod
    def name_blocks(out: dict, prefix: str, pairs) -> None:
        for i, (a, b) in enumerate(pairs):
            out[f"{prefix}.block{i + 1}.conv_a"], out[f"{prefix}.block{i + 1}.conv_b"] = a, b

    def paths(self) -> dict:
        """Our weight path prefix → Keras layer name."""
        out = {}
        reassembly = next(n for n, l in self.layers.items() if l["class_name"] == "ReassemblePatchesLayer")
        obj = self.inputs(reassembly)[0]
        amp_add, phase_add = self.inputs(obj)
        encoder_end = None
        for head, add in (("amplitude", amp_add), ("phase", phase_add)):
            padded, multiply = sorted(self.inputs(add), key=lambda n: self.cls(n) != "ZeroPadding2D")
            act = self.only(padded, "ActivationLayer")
            centre = self.only(act, "Conv2D")
            out[f"{head}.centre"] = centre
            up = self.only(self.only(centre, "GetItem"), "UpSampling2D")
            swish = next(n for n in self.inputs(multiply) if self.cls(n) != "CenterMaskLayer")
            border_out = self.only(swish, "Conv2D")
            out[f"{head}.border.out"] = border_out
            (a, b), _ = self.double_conv(self.only(self.only(border_out, "UpSampling2D"), "Conv2D"))
            out[f"{head}.border.conv_a"], out[f"{head}.border.conv_b"] = a, b
            pairs, encoder_end = self.blocks(up, "UpSampling2D")
            self.name_blocks(out, f"{head}.base", pairs)
        pairs, _ = self.blocks(encoder_end, "MaxPooling2D")
        self.name_blocks(out, "encoder", pairs)
        return out


def rel_err(a, b) -> float:
    per_item = [float(np.abs(x - y).max() / np.abs(y).max()) for x, y in zip(a, b)]
    return max(per_item)


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit("usage: export_ptychopinn.py OURS.wts.h5.zip OUT/wts.h5.zip CHECK.npz")
    ours_path, out_path, check_path = (Path(a) for a in sys.argv[1:])
    manifest, weights, probe = read_ours(ours_path)
    cfg = manifest["model_config"]
    exportable(cfg)
    n, g, s = cfg["n"], cfg["gridsize"], float(manifest["intensity_scale"])
    canvas_pad = int(np.ceil(cfg["max_offset_px"])) + 1
    offset = 4
    jitter = 2 * canvas_pad - (g - 1) * offset
    if jitter < 0:
        sys.exit(f"not exportable: a canvas of N + {2 * canvas_pad} is narrower than PtychoPINN's minimum")

    import tensorflow as tf
    from ptycho import model_manager, params
    from ptycho import probe as pprobe
    from ptycho.config.config import ModelConfig, TrainingConfig, update_legacy_dict
    from ptycho.workflows import components

    work = Path(tempfile.mkdtemp(prefix="export-ptychopinn-"))
    try:
        config = TrainingConfig(
            model=ModelConfig(N=n, gridsize=g, n_filters_scale=cfg["n_filters_scale"],
                              amp_activation=cfg["amp_activation"], object_big=True, probe_big=True,
                              probe_mask=False),
            nphotons=(s * n / 2) ** 2,
            intensity_scale_trainable=False,
            output_dir=work,
        )
        update_legacy_dict(params.cfg, config)
        params.cfg["offset"] = offset
        params.cfg["max_position_jitter"] = jitter
        params.cfg["intensity_scale"] = s
        first_mode = probe if probe.ndim == 2 else probe[0]
        pprobe.set_probe_guess(None, first_mode.astype(np.complex64))
        from ptycho import model as pmodel

        autoencoder, d2o = pmodel.create_compiled_model(gridsize=g, N=n)
        # its saver saves the module's two models
        pmodel.autoencoder, pmodel.diffraction_to_obj = autoencoder, d2o

        paths = Graph(d2o.get_config()).paths()
        for prefix, layer_name in paths.items():
            kernel = weights[f"{prefix}.weight"].transpose(2, 3, 1, 0)  # [out, in, kh, kw] → [kh, kw, in, out]
            d2o.get_layer(layer_name).set_weights([kernel, weights[f"{prefix}.bias"]])
        if len(paths) * 2 + 1 != len(weights):
            sys.exit(f"mapped {len(paths) * 2} of {len(weights) - 1} weights")
        model_manager.save(str(work))
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_name(out_path.name + ".tmp")
        shutil.copyfile(work / "wts.h5.zip", tmp)
        os.replace(tmp, out_path)

        # open what was written, with PtychoPINN's loader, and predict
        check = np.load(check_path)
        loaded, restored = components.load_inference_bundle(work)
        inner = [layer for layer in loaded.layers if isinstance(layer, tf.keras.Model)]
        network = inner[0] if len(loaded.layers) == 1 and inner else loaded
        patch_model = tf.keras.Model(network.inputs, network.get_layer("obj").output)
        scale = float(restored["intensity_scale"])
        inputs = [check["x"] * scale, check["positions"]]
        batch = len(check["x"])
        theirs_obj = np.asarray(loaded.predict(inputs, batch_size=batch, verbose=0))
        theirs_patches = np.asarray(patch_model.predict(inputs, batch_size=batch, verbose=0))
        result = {
            "out": str(out_path),
            "intensity_scale": scale,
            "patch_rel_err": rel_err(theirs_patches, check["patches"]),
        }
        if bool(check["same_reassembly"]):
            result["object_rel_err"] = rel_err(theirs_obj, check["object"])
        print(json.dumps(result))
        worst = max(v for k, v in result.items() if k.endswith("rel_err"))
        sys.exit(0 if worst <= TOLERANCE else 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
