//! Inference with a bundle: group every position, run `diffraction_to_obj`
//! in batches on the bundle's device, stitch the central crops.
use std::path::Path;
use std::time::Instant;

use ndarray::{Array2, Ix2};
use num_complex::Complex32;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::stitch::{accumulate, average};
use crate::array::{f32_to_tensor, tensor_to_c64, tensor_to_f32};
use crate::bundle::Bundle;
use crate::data::atomic::write_atomic;
use crate::data::product::canvas_shape;
use crate::data::{Dataset, npy};
use crate::error::{Error, Result};
use crate::grouping::{GroupingConfig, group};
use crate::model::input_scale;
use crate::train::{Precision, TrainedModel};

/// How to reconstruct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconConfig {
    /// Side of the central crop of each patch that is stitched (PtychoPINN: 20).
    pub crop_px: i64,
    /// Groups per forward pass.
    pub batch_size: usize,
    /// Neighbour candidates per group for gridsize 2.
    pub k_neighbours: usize,
    pub seed: u64,
    /// Where a gridsize-2 PINN's merged object is stitched from.
    pub stitch_at: StitchAt,
    /// Arithmetic of the forward passes: fp32 (default), fp32-strict, or
    /// autocast to fp16 (CUDA) or bf16; the stitching is float32 always.
    pub precision: Precision,
}

/// Where the crops of a group's merged object are stitched (gridsize 2
/// PINNs; for gridsize 1 and the supervised model both are the positions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StitchAt {
    /// The merged object seen from each member: one crop per member, at
    /// the member's position, so every grouped position is covered.
    #[default]
    Members,
    /// One crop per group, at its centroid (PtychoPINN's `trimmed_obj` +
    /// `reassemble_position`). Centroids of nearest-neighbour groups lie
    /// inside the scan, so the scan's corners and edges stay uncovered:
    /// on the quickstart test half, 88 px of the compared region (0.4 %)
    /// were never stitched, read as zero amplitude, and made two thirds of
    /// the gridsize-2 amplitude MSE.
    Centroids,
}

impl Default for ReconConfig {
    fn default() -> Self {
        ReconConfig {
            crop_px: 20,
            batch_size: 256,
            k_neighbours: 4,
            seed: 0,
            stitch_at: StitchAt::Members,
            precision: Precision::Fp32,
        }
    }
}

/// A stitched object and how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconstruction {
    /// `[H, W]`, the dataset's object grid; zero where nothing was stitched.
    pub object: Array2<Complex32>,
    /// How much patch weight each pixel received `[H, W]`.
    pub coverage: Array2<f32>,
    pub metadata: ReconMetadata,
}

/// What `_metadata` of a reconstruction NPZ records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconMetadata {
    pub format: String,
    /// `pinn inference`, `supervised inference`, `iterative epie`,
    /// `iterative gradient (…)`.
    pub source: String,
    /// The bundle's checksum (bundle inference only).
    pub bundle_sha256: Option<String>,
    /// Groups stitched (bundle inference) or positions (iterative solvers).
    pub n_groups: usize,
    /// Bundle inference settings (absent for iterative solvers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ReconConfig>,
    /// Inference (or solver iterations) wall time.
    pub seconds_inference: f64,
    pub seconds_stitch: f64,
    /// How an iterative solver ran (absent for bundle inference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solver: Option<super::iterative::SolverSummary>,
}

impl Bundle {
    /// Reconstructs the full object of `ds` with this bundle's model.
    pub fn reconstruct(&self, ds: &Dataset, cfg: &ReconConfig) -> Result<Reconstruction> {
        crate::runtime::keep_freed_memory();
        ds.validate()?;
        let mcfg = self.config();
        if ds.patch_size() != mcfg.n {
            return Err(Error::config(
                "data",
                format!(
                    "the bundle's model is for N = {}, the dataset has N = {}",
                    mcfg.n,
                    ds.patch_size()
                ),
            ));
        }
        let device = self.model.var_store().device();
        cfg.precision.check(device)?;
        cfg.precision.apply(device)?;
        crate::runtime::tune_cudnn(device);
        let _guard = tch::no_grad_guard();
        let groups = group(
            &ds.positions_px,
            &GroupingConfig {
                gridsize: mcfg.gridsize,
                k_neighbours: cfg.k_neighbours,
                n_groups: None,
                with_replacement: false,
                seed: cfg.seed,
            },
        )?;
        let (c, n) = (groups.members() as i64, mcfg.n as i64);
        let scale = input_scale(ds.diffraction.view())?;
        let diffraction = f32_to_tensor(&ds.diffraction, device) * scale;
        let idx: Vec<i64> = groups.indices.iter().map(|&i| i as i64).collect();
        let idx = Tensor::from_slice(&idx).to_device(device).view([-1, c]);
        let offsets: Vec<f32> = groups.offsets_px.iter().map(|&v| v as f32).collect();
        let offsets = Tensor::from_slice(&offsets).to_device(device).view([-1, c, 2]);
        let [h, w] = match &ds.object {
            Some(o) => [o.shape()[0], o.shape()[1]],
            None => canvas_shape(&ds.positions_px, mcfg.n),
        };
        let centroids = crate::array::f64_to_tensor(&groups.centroids_px, device);
        let started = Instant::now();
        let mut sum = Tensor::zeros([h as i64, w as i64], (Kind::ComplexFloat, device));
        let mut coverage = Tensor::zeros([h as i64, w as i64], (Kind::Float, device));
        let mut seconds_stitch = 0.0;
        let total = groups.n_groups() as i64;
        for start in (0..total).step_by(cfg.batch_size.max(1)) {
            let len = (cfg.batch_size as i64).min(total - start);
            let members = idx.narrow(0, start, len).reshape([-1]);
            let x = diffraction.index_select(0, &members).view([len, c, n, n]);
            let o = offsets.narrow(0, start, len);
            let centres = centroids.narrow(0, start, len);
            let (patches, at) = cfg.precision.run(device, || -> Result<(Tensor, Tensor)> {
                Ok(match &self.model {
                    TrainedModel::Pinn(m) if c > 1 && cfg.stitch_at == StitchAt::Members => (
                        m.diffraction_to_member_patches(&x, &o)?.view([len * c, n, n]),
                        (centres.unsqueeze(1) + o.to_kind(Kind::Double)).view([len * c, 2]),
                    ),
                    TrainedModel::Pinn(m) => (m.diffraction_to_obj(&x, &o)?, centres),
                    TrainedModel::Supervised(m) => (m.diffraction_to_obj(&x)?, centres),
                })
            })??;
            let t = Instant::now();
            let (s, cov) = accumulate(&patches, &at, cfg.crop_px, h as i64, w as i64)?;
            sum += s;
            coverage += cov;
            seconds_stitch += t.elapsed().as_secs_f64();
        }
        let object = average(&sum, &coverage)?;
        let total_seconds = started.elapsed().as_secs_f64();
        Ok(Reconstruction {
            object: tensor_to_c64(&object)?.into_dimensionality::<Ix2>().expect("2-D"),
            coverage: tensor_to_f32(&coverage)?.into_dimensionality::<Ix2>().expect("2-D"),
            metadata: ReconMetadata {
                format: "ptycho-workbench/reconstruction".into(),
                source: match &self.model {
                    TrainedModel::Pinn(_) => "pinn inference",
                    TrainedModel::Supervised(_) => "supervised inference",
                }
                .into(),
                bundle_sha256: std::fs::read(&self.path)
                    .ok()
                    .map(|b| crate::bundle::save::sha256_hex(&b)),
                n_groups: groups.n_groups(),
                config: Some(cfg.clone()),
                seconds_inference: total_seconds - seconds_stitch,
                seconds_stitch,
                solver: None,
            },
        })
    }
}

/// Writes `object` (complex64 `[H, W]`), `coverage` (float32 `[H, W]`) and
/// `_metadata` (JSON) as an NPZ, atomically.
pub fn write_recon_npz(recon: &Reconstruction, path: &Path) -> Result<()> {
    let o = recon.object.as_standard_layout();
    let c = recon.coverage.as_standard_layout();
    let meta = serde_json::to_string(&recon.metadata).expect("metadata serialises");
    let members = [
        ("object", npy::encode(o.shape(), o.as_slice().expect("contiguous"))),
        ("coverage", npy::encode(c.shape(), c.as_slice().expect("contiguous"))),
        ("_metadata", npy::encode_str(&meta)),
    ];
    write_atomic(path, |w| {
        npy::write_npz(std::io::Cursor::new(Vec::new()), &members)
            .and_then(|cur| std::io::Write::write_all(w, &cur.into_inner()))
            .map_err(|e| Error::io(path, e))
    })
}
