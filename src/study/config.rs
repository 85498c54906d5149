//! `StudyConfig`: what a dose × overlap study sweeps (ptychopinn.md §7), read
//! from TOML (`data/studies/*.toml`), validated once, and written resolved
//! into the study folder (`study.toml`), from which every job reads it.
use serde::{Deserialize, Serialize};

use crate::data::SplitAxis;
use crate::error::{Error, Result};
use crate::grouping::GroupingConfig;
use crate::model::{ModelConfig, ModelKind};
use crate::recon::ReconConfig;
use crate::recon::iterative::IterativeConfig;
use crate::simulate::SimConfig;
use crate::train::TrainConfig;

/// A whole study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StudyConfig {
    /// A name for reports.
    pub name: String,
    /// Mean photons per pattern, one dataset each (PtychoPINN: 1e3, 1e4, 1e5).
    pub doses_photons: Vec<f64>,
    /// Network gridsizes to train (1 and/or 2).
    pub gridsizes: Vec<usize>,
    /// Models to train: `pinn` (every gridsize), `supervised` (gridsize 1
    /// only: it sees single patterns).
    pub models: Vec<ModelKind>,
    /// `auto`, `cpu`, `cuda`, `cuda:N` for training, inference and the
    /// iterative solver (parallel runs give each child its own GPU).
    pub device: String,
    pub seeds: Seeds,
    pub split: SplitSection,
    /// Object, probe, scan and geometry; `size_px` is N. Its `seed` and
    /// `dose_photons` are replaced by `seeds.simulation` and each dose.
    pub simulation: SimConfig,
    /// Overlap views selected from each split (PtychoPINN: dense f = 0.7, sparse f = 0.2).
    pub views: Vec<ViewConfig>,
    pub overlap: OverlapSection,
    pub training: TrainingSection,
    /// The iterative reference solver (its `seed` is replaced by `seeds.grouping`,
    /// its `device` by `device`).
    pub iterative: IterativeConfig,
    /// Bundle inference (its `seed` is replaced by `seeds.grouping`).
    pub reconstruction: ReconConfig,
    pub slurm: SlurmSection,
}

/// Seeds of the random streams (PtychoPINN: 42, 123, 456).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Seeds {
    /// Object, scan and noise.
    pub simulation: u64,
    /// Groups (training, inference, overlap metrics) and solver batch order.
    pub grouping: u64,
    /// Image subsampling of a view (`image_fraction < 1`).
    pub subsampling: u64,
    /// Network initialisation, validation split and epoch order.
    pub training: u64,
}

impl Default for Seeds {
    fn default() -> Self {
        Seeds {
            simulation: 42,
            grouping: 123,
            subsampling: 456,
            training: 0,
        }
    }
}

/// Train/test split by position (`Dataset::split`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitSection {
    pub axis: SplitAxis,
    /// Share of the coordinate range that trains (PtychoPINN: top half, y, 0.5).
    pub fraction: f64,
}

impl Default for SplitSection {
    fn default() -> Self {
        SplitSection {
            axis: SplitAxis::Y,
            fraction: 0.5,
        }
    }
}

/// One overlap view: positions at least a spacing apart, chosen per split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewConfig {
    /// Folder name (`[A-Za-z0-9_-]+`), e.g. `dense`.
    pub name: String,
    /// Overlap fraction `f`: spacing `S = (1 − f)·N` (PtychoPINN's rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_fraction: Option<f64>,
    /// Or the spacing itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spacing_px: Option<f64>,
    /// Share of the split's images kept (seeded) before the spacing filter
    /// (PtychoPINN's `s_img`).
    #[serde(default = "one")]
    pub image_fraction: f64,
    /// Gridsizes trained on this view (default: the study's). PtychoPINN's
    /// orchestration trained the sparse view at gridsize 1 only: its groups
    /// span more than the overlap constraint's canvas (≤ N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gridsizes: Option<Vec<usize>>,
}

fn one() -> f64 {
    1.0
}

impl ViewConfig {
    /// The minimum spacing between accepted positions, pixels.
    pub fn spacing_px(&self, n: usize) -> f64 {
        match (self.spacing_px, self.overlap_fraction) {
            (Some(s), _) => s,
            (None, Some(f)) => (1.0 - f) * n as f64,
            (None, None) => 0.0,
        }
    }
}

/// Acceptance rules and measured-overlap settings of the views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverlapSection {
    /// Neighbours per image for the image overlap metric (PtychoPINN: 6).
    pub neighbour_count: usize,
    /// Probe diameter for the disc-overlap metrics; `None` = twice the
    /// radius holding 90 % of the probe's intensity.
    pub probe_diameter_px: Option<f64>,
    /// Smallest acceptance rate; lowered to the geometric bound
    /// `area / (n·π(S/2)²)` when that is smaller (PtychoPINN's ACCEPTANCE-001).
    pub min_acceptance: f64,
    /// Fewest positions a view may keep per split.
    pub min_positions: usize,
}

impl Default for OverlapSection {
    fn default() -> Self {
        OverlapSection {
            neighbour_count: 6,
            probe_diameter_px: None,
            min_acceptance: 0.1,
            min_positions: 4,
        }
    }
}

/// Named training recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// [`TrainConfig::quick`].
    Quick,
    /// [`TrainConfig::paper`].
    Paper,
}

/// A training preset and the fields a study usually changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingSection {
    pub preset: Preset,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    /// Groups per epoch; clamped to the view's training positions.
    pub n_groups: Option<usize>,
    /// Neighbour candidates per group, `K ≥ gridsize²` (PtychoPINN's study: 7).
    pub k_neighbours: usize,
    pub learning_rate: Option<f64>,
    /// Filter multiplier of the networks (PtychoPINN: 2).
    pub n_filters_scale: Option<usize>,
    /// Canvas of the gridsize-2 overlap constraint; `None`: large enough for
    /// the view's groups (at least the model default, at most N).
    pub max_offset_px: Option<f64>,
}

impl Default for TrainingSection {
    fn default() -> Self {
        TrainingSection {
            preset: Preset::Quick,
            epochs: None,
            batch_size: None,
            n_groups: None,
            k_neighbours: 7,
            learning_rate: None,
            n_filters_scale: None,
            max_offset_px: None,
        }
    }
}

/// `#SBATCH` settings of `ptycho study slurm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSection {
    pub partition: Option<String>,
    pub account: Option<String>,
    /// Wall-time limit of each task (`HH:MM:SS`).
    pub time: String,
    pub cpus_per_task: usize,
    /// GPUs per training/reconstruction task (0: none requested).
    pub gpus_per_task: usize,
    /// Extra `#SBATCH` lines, verbatim (e.g. `--qos=debug`).
    pub extra: Vec<String>,
}

impl Default for SlurmSection {
    fn default() -> Self {
        SlurmSection {
            partition: None,
            account: None,
            time: "04:00:00".into(),
            cpus_per_task: 4,
            gpus_per_task: 1,
            extra: Vec::new(),
        }
    }
}

impl Default for StudyConfig {
    /// The fly64 dose × overlap design at this crate's default N = 64.
    fn default() -> Self {
        StudyConfig {
            name: "dose_overlap".into(),
            doses_photons: vec![1e3, 1e4, 1e5],
            gridsizes: vec![1, 2],
            models: vec![ModelKind::Pinn, ModelKind::Supervised],
            device: "auto".into(),
            seeds: Seeds::default(),
            split: SplitSection::default(),
            simulation: SimConfig::default(),
            views: vec![
                ViewConfig {
                    name: "dense".into(),
                    overlap_fraction: Some(0.7),
                    spacing_px: None,
                    image_fraction: 1.0,
                    gridsizes: None,
                },
                ViewConfig {
                    name: "sparse".into(),
                    overlap_fraction: Some(0.2),
                    spacing_px: None,
                    image_fraction: 1.0,
                    gridsizes: None,
                },
            ],
            overlap: OverlapSection::default(),
            training: TrainingSection::default(),
            iterative: IterativeConfig::default(),
            reconstruction: ReconConfig::default(),
            slurm: SlurmSection::default(),
        }
    }
}

/// `dose_1e4`-style label of a dose (`{:e}`: 1000 → `1e3`, 2500 → `2.5e3`).
pub fn dose_label(dose_photons: f64) -> String {
    format!("{dose_photons:e}")
}

fn prefixed(prefix: &str, e: Error) -> Error {
    match e {
        Error::Config { field, reason } => Error::config(format!("{prefix}.{field}"), reason),
        other => other,
    }
}

fn unique<T: PartialEq + std::fmt::Debug>(field: &str, values: &[T]) -> Result<()> {
    if values.is_empty() {
        return Err(Error::config(field, "must list at least one value"));
    }
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            return Err(Error::config(field, format!("lists {v:?} twice")));
        }
    }
    Ok(())
}

impl StudyConfig {
    /// Parses TOML (unknown keys are errors) and validates.
    pub fn from_toml(text: &str) -> Result<StudyConfig> {
        let cfg: StudyConfig = toml::from_str(text).map_err(|e| Error::config("study config", e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and validates a TOML file.
    pub fn from_file(path: &std::path::Path) -> Result<StudyConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        StudyConfig::from_toml(&text).map_err(|e| match e {
            Error::Config { field, reason } => Error::config(field, format!("{reason} (in {})", path.display())),
            other => other,
        })
    }

    /// The resolved configuration as TOML (every default written out).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::config("study config", e.to_string()))
    }

    /// Patch size N.
    pub fn n_px(&self) -> usize {
        self.simulation.size_px
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::config("name", "must not be empty"));
        }
        unique("doses_photons", &self.doses_photons)?;
        for (i, d) in self.doses_photons.iter().enumerate() {
            if !(d.is_finite() && *d > 0.0) {
                return Err(Error::config(
                    format!("doses_photons[{i}]"),
                    format!("must be a positive number of photons, got {d}"),
                ));
            }
        }
        unique("gridsizes", &self.gridsizes)?;
        for (i, g) in self.gridsizes.iter().enumerate() {
            if !(*g == 1 || *g == 2) {
                return Err(Error::config(
                    format!("gridsizes[{i}]"),
                    format!("must be 1 or 2, got {g}"),
                ));
            }
        }
        unique("models", &self.models)?;
        crate::array::parse_device(&self.device).map_err(|e| match e {
            Error::Config { reason, .. } => Error::config("device", reason),
            other => other,
        })?;
        if !(self.split.fraction > 0.0 && self.split.fraction < 1.0) {
            return Err(Error::config(
                "split.fraction",
                format!("must be in (0, 1), got {}", self.split.fraction),
            ));
        }
        self.simulation.validate().map_err(|e| prefixed("simulation", e))?;
        self.validate_views()?;
        let o = &self.overlap;
        if o.neighbour_count == 0 {
            return Err(Error::config("overlap.neighbour_count", "must be at least 1"));
        }
        if let Some(d) = o.probe_diameter_px
            && !(d.is_finite() && d > 0.0)
        {
            return Err(Error::config(
                "overlap.probe_diameter_px",
                format!("must be positive, got {d}"),
            ));
        }
        if !(0.0..=1.0).contains(&o.min_acceptance) {
            return Err(Error::config(
                "overlap.min_acceptance",
                format!("must be in [0, 1], got {}", o.min_acceptance),
            ));
        }
        if o.min_positions == 0 {
            return Err(Error::config("overlap.min_positions", "must be at least 1"));
        }
        let max_c = self.gridsizes.iter().map(|g| g * g).max().unwrap_or(1);
        if max_c > 1 && self.training.k_neighbours < max_c {
            return Err(Error::config(
                "training.k_neighbours",
                format!(
                    "K = {} must be at least C = gridsize² = {max_c}",
                    self.training.k_neighbours
                ),
            ));
        }
        if self.training.n_groups == Some(0) {
            return Err(Error::config("training.n_groups", "must be at least 1"));
        }
        if self.training.n_filters_scale == Some(0) {
            return Err(Error::config("training.n_filters_scale", "must be at least 1"));
        }
        self.train_config(1)?.validate()?;
        for &g in &self.gridsizes {
            for &kind in &self.models {
                if kind == ModelKind::Supervised && g != 1 {
                    continue; // not planned: the baseline is gridsize 1 only
                }
                self.model_config(g, kind).validate()?;
            }
        }
        self.iterative_config()
            .validate()
            .map_err(|e| prefixed("iterative", e))?;
        let r = &self.reconstruction;
        if r.crop_px <= 0 || r.crop_px as usize > self.n_px() {
            return Err(Error::config(
                "reconstruction.crop_px",
                format!("must be in 1..={}, got {}", self.n_px(), r.crop_px),
            ));
        }
        if r.batch_size == 0 {
            return Err(Error::config("reconstruction.batch_size", "must be at least 1"));
        }
        if self.slurm.cpus_per_task == 0 {
            return Err(Error::config("slurm.cpus_per_task", "must be at least 1"));
        }
        Ok(())
    }

    fn validate_views(&self) -> Result<()> {
        if self.views.is_empty() {
            return Err(Error::config("views", "must list at least one view"));
        }
        let n = self.n_px() as f64;
        for (i, v) in self.views.iter().enumerate() {
            let field = |f: &str| format!("views[{i}].{f}");
            if v.name.is_empty()
                || !v
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(Error::config(
                    field("name"),
                    format!("`{}` must be letters, digits, `_` or `-`", v.name),
                ));
            }
            if self.views[..i].iter().any(|w| w.name == v.name) {
                return Err(Error::config(field("name"), format!("`{}` is used twice", v.name)));
            }
            match (v.overlap_fraction, v.spacing_px) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(Error::config(
                        field("overlap_fraction"),
                        "give exactly one of overlap_fraction and spacing_px",
                    ));
                }
                (Some(f), None) if !(0.0..1.0).contains(&f) => {
                    return Err(Error::config(
                        field("overlap_fraction"),
                        format!("must be in [0, 1) (spacing (1 − f)·N > 0), got {f}"),
                    ));
                }
                (None, Some(s)) if !(s.is_finite() && s >= 0.0) => {
                    return Err(Error::config(field("spacing_px"), format!("must be ≥ 0, got {s}")));
                }
                _ => {}
            }
            if let Some(gs) = &v.gridsizes {
                unique(&field("gridsizes"), gs)?;
                if let Some(g) = gs.iter().find(|g| !self.gridsizes.contains(g)) {
                    return Err(Error::config(
                        field("gridsizes"),
                        format!("{g} is not one of the study's gridsizes {:?}", self.gridsizes),
                    ));
                }
            }
            if !(v.image_fraction > 0.0 && v.image_fraction <= 1.0) {
                return Err(Error::config(
                    field("image_fraction"),
                    format!("must be in (0, 1], got {}", v.image_fraction),
                ));
            }
            debug_assert!(v.spacing_px(n as usize) >= 0.0);
        }
        Ok(())
    }

    /// The simulation of one dose.
    pub fn sim_config(&self, dose_photons: f64) -> SimConfig {
        SimConfig {
            seed: self.seeds.simulation,
            dose_photons: Some(dose_photons),
            ..self.simulation.clone()
        }
    }

    /// The resolved training recipe for `n_positions` training positions
    /// (`n_groups` is clamped to them).
    pub fn train_config(&self, n_positions: usize) -> Result<TrainConfig> {
        let t = &self.training;
        let mut c = match t.preset {
            Preset::Quick => TrainConfig::quick(),
            Preset::Paper => TrainConfig::paper(),
        };
        if let Some(e) = t.epochs {
            c.epochs = e;
        }
        if let Some(b) = t.batch_size {
            c.batch_size = b;
        }
        if let Some(lr) = t.learning_rate {
            c.learning_rate = lr;
        }
        if let Some(g) = t.n_groups {
            c.grouping.n_groups = Some(g);
        }
        c.grouping = GroupingConfig {
            k_neighbours: t.k_neighbours,
            n_groups: c.grouping.n_groups.map(|g| g.min(n_positions.max(1))),
            with_replacement: false,
            seed: self.seeds.grouping,
            ..c.grouping
        };
        c.seed = self.seeds.training;
        c.validate().map_err(|e| match e {
            Error::Config { field, reason } => Error::config(field.replacen("train.", "training.", 1), reason),
            other => other,
        })?;
        Ok(c)
    }

    /// The network of one job.
    pub fn model_config(&self, gridsize: usize, kind: ModelKind) -> ModelConfig {
        let mut m = ModelConfig {
            kind,
            n: self.n_px(),
            gridsize,
            ..ModelConfig::default()
        };
        if let Some(s) = self.training.n_filters_scale {
            m.n_filters_scale = s;
        }
        if let Some(o) = self.training.max_offset_px {
            m.max_offset_px = o;
        }
        m
    }

    /// The iterative solver with the study's seed and device.
    pub fn iterative_config(&self) -> IterativeConfig {
        IterativeConfig {
            seed: self.seeds.grouping,
            device: self.device.clone(),
            ..self.iterative.clone()
        }
    }

    /// Bundle inference settings with the study's seed.
    pub fn recon_config(&self) -> ReconConfig {
        ReconConfig {
            seed: self.seeds.grouping,
            ..self.reconstruction.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_through_toml() {
        let cfg = StudyConfig::default();
        cfg.validate().unwrap();
        let text = cfg.to_toml().unwrap();
        assert_eq!(StudyConfig::from_toml(&text).unwrap(), cfg);
    }

    #[test]
    fn spacing_follows_ptychopinn() {
        let cfg = StudyConfig::default();
        assert!((cfg.views[0].spacing_px(128) - 38.4).abs() < 1e-9);
        assert!((cfg.views[1].spacing_px(128) - 102.4).abs() < 1e-9);
        assert_eq!(dose_label(1e3), "1e3");
        assert_eq!(dose_label(2.5e4), "2.5e4");
    }
}
