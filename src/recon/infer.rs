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
use crate::recon::iterative::{IterativeConfig, IterativeInit, reconstruct_iterative_from};
use crate::train::{Precision, TrainedModel};

/// Gauss-Seidel sweeps of [`super::phase_sync::phase_factors`] (each a pass
/// over every crop pixel on the host).
const PHASE_SYNC_SWEEPS: usize = 100;

/// `cpu` or `cuda:N`, as `IterativeConfig::device` reads it.
pub(crate) fn device_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}

/// How to reconstruct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconConfig {
    /// Side of the central crop of each patch that is stitched (PtychoPINN: 20).
    pub crop_px: i64,
    /// Grow the crop (up to the whole patch) until the crops cover the
    /// illuminated pixels inside the scan ([`covering_crop`]): a dense scan
    /// keeps `crop_px`, a sparse one is stitched from as much of each patch
    /// as its probe lit. The crop used is in `_metadata.config`.
    pub cover_scan: bool,
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
    /// Physics after the network: an iterative solver that starts from the
    /// stitched object (scaled to the measured energy, gaps at its mean)
    /// on the bundle's device (its `device` field is ignored). `None`: the
    /// network alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refine: Option<IterativeConfig>,
    /// Before averaging, turn each group's crops by the constant phase that
    /// agrees best with its neighbours where they overlap
    /// ([`super::phase_sync`]): the loss cannot see a patch's constant
    /// phase, so plain averaging can add vectors that partly cancel. On by
    /// default: on the development bundles it raised the phase SSIM by
    /// 0.005–0.008 (phase PSNR by up to 1.9 dB) and left the amplitude as
    /// it was (docs/quality.md), for about half a second per thousand
    /// groups on the CPU.
    pub phase_sync: bool,
    /// Test-time training before inference (PINNs only): a copy of the
    /// bundle's network fine-tuned on the dataset being reconstructed with
    /// the physics loss (no ground truth needed). `None`: the bundle as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapt: Option<AdaptConfig>,
    /// Choose between the network, the solver of `refine` from a flat
    /// object, and the two together by how well each predicts held-out
    /// patterns, then rebuild the winner from all of them
    /// ([`super::select`]). Needs `refine`. `None`: `refine` decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<super::select::SelectConfig>,
}

/// How [`ReconConfig::adapt`] fine-tunes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptConfig {
    /// Optimiser steps (batches of groups drawn from the dataset).
    pub steps: usize,
    pub batch_size: usize,
    /// Adam's step size, with a 10 % warm-up and a cosine to a tenth of it.
    pub learning_rate: f64,
    pub seed: u64,
}

impl Default for AdaptConfig {
    fn default() -> Self {
        AdaptConfig {
            steps: 100,
            batch_size: 16,
            learning_rate: 3e-4,
            seed: 0,
        }
    }
}

impl AdaptConfig {
    /// The training configuration of the fine-tuning: `steps·batch_size`
    /// groups drawn with replacement, one epoch, no validation split.
    pub fn train_config(&self) -> crate::train::TrainConfig {
        let mut t = crate::train::TrainConfig::quick();
        t.epochs = 1;
        t.batch_size = self.batch_size;
        t.learning_rate = self.learning_rate;
        t.min_learning_rate = self.learning_rate / 10.0;
        t.warmup_steps = (self.steps / 10).max(1);
        t.validation_fraction = 0.0;
        t.early_stopping_patience = usize::MAX;
        t.seed = self.seed;
        t.grouping.seed = self.seed;
        t.grouping.n_groups = Some(self.steps * self.batch_size);
        t.grouping.with_replacement = true;
        t
    }
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
            cover_scan: true,
            batch_size: 256,
            k_neighbours: 4,
            seed: 0,
            stitch_at: StitchAt::Members,
            precision: Precision::Fp32,
            refine: None,
            adapt: None,
            phase_sync: true,
            select: None,
        }
    }
}

impl ReconConfig {
    /// The network, then ePIE with the settings it chooses from the data
    /// ([`crate::recon::iterative::auto`]) starting from its object: the
    /// one-call reconstruction the quality suite measures as `hybrid`.
    pub fn hybrid() -> Self {
        ReconConfig {
            refine: Some(IterativeConfig::epie()),
            ..ReconConfig::default()
        }
    }

    /// [`ReconConfig::hybrid`] with [`ReconConfig::select`]: the network,
    /// ePIE (settings chosen from the data) or the network then ePIE,
    /// whichever predicts held-out patterns best (`ptycho infer --select`;
    /// the quality suite's `best`).
    pub fn best() -> Self {
        ReconConfig {
            select: Some(super::select::SelectConfig::default()),
            ..ReconConfig::hybrid()
        }
    }
}

/// Whether a reconstruction's `_metadata.source` names one of our networks'
/// inferences whose object stays on the dataset's grid: plain, or refined
/// by a solver that kept the probe fixed (a refined probe can drift and
/// carry the object with it).
pub fn on_dataset_grid(source: &str) -> bool {
    (source.starts_with("pinn inference") || source.starts_with("supervised inference"))
        && !source.contains("probe refined")
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
    /// Bundle inference refined by a solver ([`ReconConfig::refine`]): how it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refinement: Option<super::iterative::SolverSummary>,
    /// Test-time training ([`ReconConfig::adapt`]): its loss before and
    /// after, and its wall time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptation: Option<AdaptSummary>,
    /// The held-out choice ([`ReconConfig::select`]): each candidate's
    /// score and the winner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<super::select::SelectionSummary>,
}

/// How a test-time fine-tuning ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptSummary {
    pub steps: usize,
    /// Mean physics loss on the dataset before and after.
    pub loss_before: f64,
    pub loss_after: f64,
    pub seconds: f64,
}

impl Bundle {
    /// Reconstructs the full object of `ds` with this bundle's model (after
    /// test-time training when `cfg.adapt` says so).
    pub fn reconstruct(&self, ds: &Dataset, cfg: &ReconConfig) -> Result<Reconstruction> {
        if let Some(select) = &cfg.select {
            return self.reconstruct_selected(ds, cfg, select);
        }
        let Some(adapt) = &cfg.adapt else {
            return self.reconstruct_with(&self.model, ds, cfg, None);
        };
        if !matches!(self.model, TrainedModel::Pinn(_)) {
            return Err(Error::config(
                "adapt",
                "test-time training needs a PINN (the supervised baseline would need the truth)",
            ));
        }
        ds.validate()?;
        let device = self.model.var_store().device();
        let started = Instant::now();
        let mut trainer = crate::train::Trainer::new(self.config().clone(), adapt.train_config(), device);
        trainer.init = Some(std::rc::Rc::new(crate::train::InitWeights::from_bundle(self)));
        let loss_before = trainer.evaluate(&self.model, ds)?;
        let outcome = trainer.fit(ds, &mut crate::train::SilentObserver)?;
        let loss_after = trainer.evaluate(&outcome.model, ds)?;
        let summary = AdaptSummary {
            steps: adapt.steps,
            loss_before,
            loss_after,
            seconds: started.elapsed().as_secs_f64(),
        };
        self.reconstruct_with(&outcome.model, ds, cfg, Some(summary))
    }

    fn reconstruct_with(
        &self,
        model: &TrainedModel,
        ds: &Dataset,
        cfg: &ReconConfig,
        adaptation: Option<AdaptSummary>,
    ) -> Result<Reconstruction> {
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
        let device = model.var_store().device();
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
        let at_positions = c == 1 || cfg.stitch_at == StitchAt::Members;
        let crop_px = if cfg.cover_scan && at_positions {
            covering_crop(ds, cfg.crop_px, n, [h, w])?
        } else {
            cfg.crop_px
        };
        // PtychoPINN's reassembly division (imported models) leaves only the
        // central N/2 square at the object's scale; outside it, ×1000
        let crop_px = match mcfg.reassembly_norm {
            crate::model::ReassemblyNorm::CentreSquare => crop_px.min(n / 2),
            crate::model::ReassemblyNorm::Coverage => crop_px,
        };
        let centroids = crate::array::f64_to_tensor(&groups.centroids_px, device);
        let started = Instant::now();
        let mut sum = Tensor::zeros([h as i64, w as i64], (Kind::ComplexFloat, device));
        let mut coverage = Tensor::zeros([h as i64, w as i64], (Kind::Float, device));
        let mut seconds_stitch = 0.0;
        let total = groups.n_groups() as i64;
        // with phase synchronisation every crop waits for the others
        let mut kept: Vec<(Tensor, Tensor, Tensor)> = Vec::new();
        for start in (0..total).step_by(cfg.batch_size.max(1)) {
            let len = (cfg.batch_size as i64).min(total - start);
            let members = idx.narrow(0, start, len).reshape([-1]);
            let x = diffraction.index_select(0, &members).view([len, c, n, n]);
            let o = offsets.narrow(0, start, len);
            let centres = centroids.narrow(0, start, len);
            let (patches, at) = cfg.precision.run(device, || -> Result<(Tensor, Tensor)> {
                Ok(match model {
                    TrainedModel::Pinn(m) if c > 1 && cfg.stitch_at == StitchAt::Members => (
                        m.diffraction_to_member_patches(&x, &o)?.view([len * c, n, n]),
                        (centres.unsqueeze(1) + o.to_kind(Kind::Double)).view([len * c, 2]),
                    ),
                    TrainedModel::Pinn(m) => (m.diffraction_to_obj(&x, &o)?, centres),
                    TrainedModel::Supervised(m) => (m.diffraction_to_obj(&x)?, centres),
                })
            })??;
            let t = Instant::now();
            if cfg.phase_sync {
                let per_group = patches.size()[0] / len;
                let group = Tensor::arange_start(start, start + len, (Kind::Int64, device)).repeat_interleave_self_int(
                    per_group,
                    Some(0),
                    None,
                );
                let m = crop_px.clamp(2, n);
                let crops = patches.narrow(1, (n - m) / 2, m).narrow(2, (n - m) / 2, m).contiguous();
                kept.push((crops, at, group));
            } else {
                let (s, cov) = accumulate(&patches, &at, crop_px, h as i64, w as i64)?;
                sum += s;
                coverage += cov;
            }
            seconds_stitch += t.elapsed().as_secs_f64();
        }
        if cfg.phase_sync && !kept.is_empty() {
            let t = Instant::now();
            let crops = Tensor::cat(&kept.iter().map(|k| k.0.shallow_clone()).collect::<Vec<_>>(), 0);
            let at = Tensor::cat(&kept.iter().map(|k| k.1.shallow_clone()).collect::<Vec<_>>(), 0);
            let group = Tensor::cat(&kept.iter().map(|k| k.2.shallow_clone()).collect::<Vec<_>>(), 0);
            let factors =
                super::phase_sync::phase_factors(&crops, &at, &group, total, h as i64, w as i64, PHASE_SYNC_SWEEPS)?;
            let turned = crops * factors.view([-1, 1, 1]);
            let m = turned.size()[1];
            let (s, cov) = accumulate(&turned, &at, m, h as i64, w as i64)?;
            sum += s;
            coverage += cov;
            seconds_stitch += t.elapsed().as_secs_f64();
        }
        let object = average(&sum, &coverage)?;
        let total_seconds = started.elapsed().as_secs_f64();
        let network = match model {
            TrainedModel::Pinn(_) => "pinn inference",
            TrainedModel::Supervised(_) => "supervised inference",
        };
        let mut object = tensor_to_c64(&object)?.into_dimensionality::<Ix2>().expect("2-D");
        let mut coverage = tensor_to_f32(&coverage)?.into_dimensionality::<Ix2>().expect("2-D");
        let (mut source, mut refinement) = (network.to_string(), None);
        if let Some(r) = &cfg.refine {
            let solver_cfg = IterativeConfig {
                device: device_name(device),
                ..r.clone()
            };
            let init = IterativeInit {
                object,
                coverage: Some(coverage.clone()),
                probe: None,
                source: network.into(),
            };
            let out = reconstruct_iterative_from(ds, &solver_cfg, Some(&init), &mut |_| {})?;
            object = out.reconstruction.object;
            // the solver's illumination, as for a solver's own object: where
            // the data constrain the refined object (a half-set FRC or a
            // comparison with a reference picks its region from it)
            coverage = out.reconstruction.coverage;
            let solver = out.reconstruction.metadata.solver.expect("solver summary");
            source = format!(
                "{network} + {}{}",
                out.reconstruction.metadata.source.trim_start_matches("iterative "),
                if solver_cfg.refine_probe {
                    " (probe refined)"
                } else {
                    ""
                }
            );
            refinement = Some(solver);
        }
        Ok(Reconstruction {
            object,
            coverage,
            metadata: ReconMetadata {
                format: "ptycho-workbench/reconstruction".into(),
                source,
                bundle_sha256: std::fs::read(&self.path)
                    .ok()
                    .map(|b| crate::bundle::save::sha256_hex(&b)),
                n_groups: groups.n_groups(),
                config: Some(ReconConfig { crop_px, ..cfg.clone() }),
                seconds_inference: total_seconds - seconds_stitch,
                seconds_stitch,
                solver: None,
                refinement,
                adaptation,
                selection: None,
            },
        })
    }
}

/// The smallest even crop from `crop_px` up to the patch size `n` whose
/// squares, centred on the scan positions, cover at least 99 % of the
/// pixels that are illuminated ([`crate::physics::illuminated_mask`]) and
/// inside the positions' bounding box. A dense scan is covered by
/// PtychoPINN's 20-px crops already; in a scan with little or no overlap
/// they would leave most of each lit patch unstitched (read as zero).
pub fn covering_crop(ds: &Dataset, crop_px: i64, n: i64, shape: [usize; 2]) -> Result<i64> {
    let lit = crate::physics::illuminated_mask(ds.probe.view(), ds.positions_px.view(), shape)?;
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for row in ds.positions_px.rows() {
        for k in 0..2 {
            lo[k] = lo[k].min(row[k]);
            hi[k] = hi[k].max(row[k]);
        }
    }
    let inside = |r: usize, c: usize| {
        (lo[1].floor()..=hi[1].ceil()).contains(&(r as f64)) && (lo[0].floor()..=hi[0].ceil()).contains(&(c as f64))
    };
    let wanted: Vec<(usize, usize)> = lit
        .indexed_iter()
        .filter(|&((r, c), &l)| l && inside(r, c))
        .map(|(p, _)| p)
        .collect();
    if wanted.is_empty() {
        return Ok(crop_px);
    }
    let mut crop = crop_px;
    while crop < n {
        let square = ndarray::Array2::from_elem((crop as usize, crop as usize), true);
        let covered = crate::physics::illumination::illuminated(square.view(), ds.positions_px.view(), shape)?;
        let hit = wanted.iter().filter(|&&p| covered[p]).count();
        if hit as f64 >= 0.99 * wanted.len() as f64 {
            break;
        }
        crop = (crop + 2).min(n);
    }
    Ok(crop)
}

/// Writes `object` (complex64 `[H, W]`), `coverage` (float32 `[H, W]`) and
/// `_metadata` (JSON) as an NPZ, atomically.
pub fn write_recon_npz(recon: &Reconstruction, path: &Path) -> Result<()> {
    write_recon_npz_with_probe(recon, None, path)
}

/// [`write_recon_npz`] plus a `probe` (complex64 `[N, N]`) when given: a
/// solver's refined probe, which `ptycho reconstruct --init` starts from.
pub fn write_recon_npz_with_probe(
    recon: &Reconstruction,
    probe: Option<&Array2<Complex32>>,
    path: &Path,
) -> Result<()> {
    let modes = probe.map(|p| p.clone().insert_axis(ndarray::Axis(0)));
    write_recon_npz_with(recon, modes.as_ref(), None, path)
}

/// [`write_recon_npz`] plus, when given, the probe modes (`probe`: the
/// first, complex64 `[N, N]`; `probe_modes`: all K `[K, N, N]` when K > 1)
/// and corrected positions (`xcoords`, `ycoords`: float64 `[n]`, object
/// pixels, docs/physics.md).
pub fn write_recon_npz_with(
    recon: &Reconstruction,
    probe_modes: Option<&ndarray::Array3<Complex32>>,
    positions_px: Option<&Array2<f64>>,
    path: &Path,
) -> Result<()> {
    let o = recon.object.as_standard_layout();
    let c = recon.coverage.as_standard_layout();
    let meta = serde_json::to_string(&recon.metadata).expect("metadata serialises");
    let mut members = vec![
        ("object", npy::encode(o.shape(), o.as_slice().expect("contiguous"))),
        ("coverage", npy::encode(c.shape(), c.as_slice().expect("contiguous"))),
        ("_metadata", npy::encode_str(&meta)),
    ];
    if let Some(m) = probe_modes {
        let m = m.as_standard_layout();
        let first = m.index_axis(ndarray::Axis(0), 0);
        members.push((
            "probe",
            npy::encode(first.shape(), first.as_slice().expect("contiguous")),
        ));
        if m.shape()[0] > 1 {
            members.push(("probe_modes", npy::encode(m.shape(), m.as_slice().expect("contiguous"))));
        }
    }
    if let Some(p) = positions_px {
        members.push(("xcoords", npy::encode(&[p.nrows()], &p.column(0).to_vec())));
        members.push(("ycoords", npy::encode(&[p.nrows()], &p.column(1).to_vec())));
    }
    write_atomic(path, |w| {
        npy::write_npz(std::io::Cursor::new(Vec::new()), &members)
            .and_then(|cur| std::io::Write::write_all(w, &cur.into_inner()))
            .map_err(|e| Error::io(path, e))
    })
}
