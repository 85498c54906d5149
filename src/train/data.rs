//! A dataset turned into training tensors on the device: grouped, normalised
//! inputs, count targets, offsets and (for the baseline) true patches.
use tch::{Device, Kind, Tensor};

use crate::array::{c64_to_tensor, f32_to_tensor};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::grouping::{GroupingConfig, Groups, group};
use crate::model::{ModelConfig, ModelKind, input_scale};
use crate::physics::extract_patches;

/// Everything a training step reads, already on the device.
#[derive(Debug)]
pub struct TrainingData {
    /// Network input `[G, C, N, N]` f32: `X · input_scale`.
    pub x: Tensor,
    /// Count targets `[G, C, N, N]` f32: `(s·X)²`.
    pub counts: Tensor,
    /// Offsets `[G, C, 2]` f32, member − centroid.
    pub offsets: Tensor,
    /// True object patches `[G, N, N]` complex64 at each position (baseline only).
    pub truth: Option<Tensor>,
    pub groups: Groups,
    pub input_scale: f64,
    pub intensity_scale: f64,
}

impl TrainingData {
    /// Groups `ds` as `grouping` says (gridsize from `model`) and builds the tensors.
    pub fn new(ds: &Dataset, model: &ModelConfig, grouping: &GroupingConfig, device: Device) -> Result<Self> {
        ds.validate()?;
        if ds.patch_size() != model.n {
            return Err(Error::config(
                "model.n",
                format!(
                    "the model is for N = {}, the dataset has N = {}",
                    model.n,
                    ds.patch_size()
                ),
            ));
        }
        let intensity_scale = ds.metadata.intensity_scale.ok_or_else(|| {
            Error::value(
                "dataset",
                "has no intensity scale (counts = (s·X)²): simulate it with a dose, or set metadata.intensity_scale",
            )
        })?;
        if !(intensity_scale.is_finite() && intensity_scale > 0.0) {
            return Err(Error::value(
                "dataset",
                format!("intensity scale must be positive, got {intensity_scale}"),
            ));
        }
        // without replacement, `n_groups` is at most one group per position:
        // a preset's "up to 1024 groups" on a scan of 991 takes all 991
        let n_groups = match grouping.n_groups {
            Some(g) if !grouping.with_replacement => Some(g.min(ds.n_images())),
            other => other,
        };
        let grouping = GroupingConfig {
            gridsize: model.gridsize,
            n_groups,
            ..grouping.clone()
        };
        let groups = group(&ds.positions_px, &grouping)?;
        let max_offset = groups.offsets_px.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if max_offset > model.max_offset_px {
            return Err(Error::config(
                "model.max_offset_px",
                format!(
                    "groups reach {max_offset:.2} px from their centroid, more than the canvas holds \
                     ({} px): raise it or use fewer neighbours (grouping.k_neighbours)",
                    model.max_offset_px
                ),
            ));
        }
        let scale = input_scale(ds.diffraction.view())?;
        let (g, c, n) = (groups.n_groups() as i64, groups.members() as i64, model.n as i64);
        let idx: Vec<i64> = groups.indices.iter().map(|&i| i as i64).collect();
        let idx = Tensor::from_slice(&idx).to_device(device);
        let diffraction = f32_to_tensor(&ds.diffraction, device);
        let xg = diffraction.index_select(0, &idx).view([g, c, n, n]);
        let offsets: Vec<f32> = groups.offsets_px.iter().map(|&v| v as f32).collect();
        let truth = match model.kind {
            ModelKind::Pinn => None,
            ModelKind::Supervised => Some(true_patches(ds, device)?.index_select(0, &idx)),
        };
        Ok(TrainingData {
            x: &xg * scale,
            counts: (&xg * intensity_scale).square(),
            offsets: Tensor::from_slice(&offsets).view([g, c, 2]).to_device(device),
            truth,
            groups,
            input_scale: scale,
            intensity_scale,
        })
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.n_groups()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The object at each position: stored `Y` patches, else cut from the
/// ground-truth object. # Shapes: `[n, N, N]` complex64.
fn true_patches(ds: &Dataset, device: Device) -> Result<Tensor> {
    if let Some(y) = &ds.patches {
        return Ok(c64_to_tensor(y, device));
    }
    let object = ds.object_tensor(device).ok_or_else(|| {
        Error::value(
            "dataset",
            "the supervised baseline needs ground truth: an object or stored patches (Y)",
        )
    })?;
    extract_patches(&object, &ds.positions_tensor(device), ds.patch_size() as i64)
        .map(|t| t.to_kind(Kind::ComplexFloat))
}
