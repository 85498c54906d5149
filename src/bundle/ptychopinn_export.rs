//! Exporting one of our bundles as a PtychoPINN `wts.h5.zip`. PtychoPINN's
//! bundle holds pickles of its own Python objects, so the writing is done
//! by PtychoPINN's saver, through `scripts/export_ptychopinn.py` in an
//! optional Python environment (docs/ptychopinn.md). This side checks that
//! the network is one PtychoPINN has, writes the inputs and our
//! predictions the script compares against, runs it, and reads the written
//! bundle back with the importer to compare the weights bit for bit.
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use super::Bundle;
use super::ptychopinn::read_ptychopinn_bundle;
use crate::array::{tensor_to_c64, tensor_to_f32};
use crate::data::npy;
use crate::error::{Error, Result};
use crate::model::{BorderActivation, ModelConfig, ModelKind, OverlapFrame, PhaseActivation, ReassemblyNorm};
use crate::train::TrainedModel;

/// How the export ran.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The Python with TensorFlow (`.venv-ptychopinn/bin/python`).
    pub python: PathBuf,
    /// A PtychoPINN source tree (put on PYTHONPATH), or `None` when the
    /// package is installed in `python`'s environment.
    pub ptychopinn_src: Option<PathBuf>,
    /// `scripts/export_ptychopinn.py`.
    pub script: PathBuf,
}

/// What the export measured.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub out: PathBuf,
    /// PtychoPINN's loaded model against ours, patch by patch (its `obj` layer).
    pub patch_rel_err: f64,
    /// Its `diffraction_to_obj` output against ours; `None` when our bundle
    /// reassembles differently ([`ReassemblyNorm::Coverage`]).
    pub object_rel_err: Option<f64>,
    /// Weights read back from the written bundle by our importer that
    /// differ from ours in any bit (0: a bit-identical round trip).
    pub weights_differing: usize,
    pub weights_compared: usize,
}

/// Whether PtychoPINN's CNN can hold this network, naming the setting
/// that rules it out.
pub fn check_exportable(cfg: &ModelConfig) -> Result<()> {
    let refuse = |field: &str, why: &str| Err(Error::config(format!("model.{field}"), why.to_string()));
    if cfg.kind != ModelKind::Pinn {
        return refuse("kind", "only PINNs can be exported (PtychoPINN's bundle is its PINN)");
    }
    if !matches!(cfg.n, 64 | 128) {
        return refuse("n", "PtychoPINN's CNN takes N = 64, 128 or 256");
    }
    if !cfg.border_branch {
        return refuse(
            "border_branch",
            "PtychoPINN's network has the border branch (probe.big)",
        );
    }
    if cfg.border_activation != BorderActivation::Swish {
        return refuse(
            "border_activation",
            "PtychoPINN's border branch ends in swish: train with border_activation = \"swish\"",
        );
    }
    if cfg.phase_activation != PhaseActivation::PiTanh {
        return refuse("phase_activation", "PtychoPINN's phase head is π·tanh");
    }
    if cfg.bottleneck_mixer {
        return refuse("bottleneck_mixer", "PtychoPINN's network has no bottleneck mixer");
    }
    if cfg.overlap_frame != OverlapFrame::Centroid {
        return refuse("overlap_frame", "PtychoPINN reassembles at the centroid");
    }
    Ok(())
}

/// The inputs the script feeds PtychoPINN's loaded model and our
/// predictions for them, as the NPZ bytes it reads: `x` `[B, N, N, C]`,
/// `positions` `[B, 1, 2, C]` (PtychoPINN's sign), `patches` `[B, N, N, C]`,
/// `object` `[B, N, N, 1]`, `same_reassembly`.
pub fn check_inputs(model: &TrainedModel, seed: i64) -> Result<Vec<u8>> {
    let TrainedModel::Pinn(net) = model else {
        return Err(Error::config("model.kind", "only PINNs can be exported"));
    };
    let cfg = net.config();
    let (c, n, batch) = (cfg.channels() as i64, cfg.n as i64, 4i64);
    tch::manual_seed(seed);
    // inputs normalised as the trainer normalises them: mean energy (N/2)²
    let x = Tensor::rand([batch, c, n, n], (Kind::Float, Device::Cpu));
    let energy = x.square().sum_dim_intlist([1i64, 2, 3].as_slice(), true, Kind::Float);
    let x = &x * ((n * n / 4) as f64 / energy).sqrt() * (c as f64).sqrt();
    // whole-pixel offsets within the canvas, member − centroid, in ± pairs
    // so each group's sum to exactly zero (PtychoPINN recentres its
    // reassembly on the batch's mean offset)
    let reach = cfg.max_offset_px.floor().min(4.0);
    let half = (Tensor::rand([batch, c / 2, 2], (Kind::Float, Device::Cpu)) * (2.0 * reach) - reach).round();
    let offsets = if c > 1 {
        Tensor::cat(&[&half, &(-&half)], 1)
    } else {
        Tensor::zeros([batch, 1, 2], (Kind::Float, Device::Cpu))
    };
    let (patches, object) = tch::no_grad(|| -> Result<(Tensor, Tensor)> {
        Ok((net.object_patches(&x), net.diffraction_to_obj(&x, &offsets)?))
    })?;
    // as arrays in standard order, for the .npy encoder
    let npy_f32 = |t: &Tensor| -> Result<Vec<u8>> {
        let a = tensor_to_f32(t)?;
        Ok(npy::encode(a.shape(), &a.iter().copied().collect::<Vec<_>>()))
    };
    let npy_c64 = |t: &Tensor| -> Result<Vec<u8>> {
        let a = tensor_to_c64(t)?;
        Ok(npy::encode(a.shape(), &a.iter().copied().collect::<Vec<_>>()))
    };
    let same = [u8::from(cfg.reassembly_norm == ReassemblyNorm::CentreSquare)];
    let members = [
        ("x", npy_f32(&x.permute([0, 2, 3, 1]))?),
        // theirs: [B, 1, 2, C] of −(member − centroid)
        ("positions", npy_f32(&(-&offsets).permute([0, 2, 1]).unsqueeze(1))?),
        ("patches", npy_c64(&patches.permute([0, 2, 3, 1]))?),
        ("object", npy_c64(&object.unsqueeze(-1))?),
        ("same_reassembly", npy::encode(&[], &same)),
    ];
    let cursor =
        npy::write_npz(std::io::Cursor::new(Vec::new()), &members).map_err(|e| Error::io(std::env::temp_dir(), e))?;
    Ok(cursor.into_inner())
}

/// Exports `bundle` to `out` (a `wts.h5.zip` path) through PtychoPINN's
/// saver, checks its predictions and reads it back.
pub fn export_ptychopinn(bundle: &Path, out: &Path, opts: &ExportOptions) -> Result<ExportReport> {
    let ours = Bundle::load(bundle, Device::Cpu)?;
    check_exportable(ours.config())?;
    for (what, p) in [("Python", &opts.python), ("export script", &opts.script)] {
        if !p.exists() {
            return Err(Error::value(
                what,
                format!(
                    "{} does not exist: `make ptychopinn-env` prepares the environment (docs/ptychopinn.md)",
                    p.display()
                ),
            ));
        }
    }
    let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let check = dir.path().join("check.npz");
    std::fs::write(&check, check_inputs(&ours.model, 7)?).map_err(|e| Error::io(&check, e))?;
    let mut cmd = Command::new(&opts.python);
    cmd.arg(&opts.script).arg(bundle).arg(out).arg(&check);
    if let Some(src) = &opts.ptychopinn_src {
        cmd.env("PYTHONPATH", src);
    }
    let output = cmd.output().map_err(|e| Error::io(&opts.python, e))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
    let result: serde_json::Value = serde_json::from_str(last).unwrap_or(serde_json::Value::Null);
    if result.is_null() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        return Err(Error::value(
            "export",
            format!(
                "{} failed ({}):\n{}",
                opts.script.display(),
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        ));
    }
    let patch_rel_err = result["patch_rel_err"].as_f64().unwrap_or(f64::INFINITY);
    let object_rel_err = result.get("object_rel_err").and_then(serde_json::Value::as_f64);
    // read back by our own importer: the weights must be ours, bit for bit
    let back = read_ptychopinn_bundle(out)?;
    let mine = ours.model.var_store().variables();
    let mut differing = 0;
    for (name, t) in &back.weights {
        let same = mine.get(name).is_some_and(|m| m.contiguous().equal(t));
        differing += usize::from(!same);
    }
    let report = ExportReport {
        out: out.to_path_buf(),
        patch_rel_err,
        object_rel_err,
        weights_differing: differing,
        weights_compared: back.weights.len(),
    };
    if !output.status.success() {
        return Err(Error::value(
            "export",
            format!("PtychoPINN's loaded model does not predict what ours does: {result}"),
        ));
    }
    Ok(report)
}
