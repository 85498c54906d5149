//! `IterativeConfig`: what the iterative solvers read (serde, validated).
use serde::{Deserialize, Serialize};

use super::positions::PositionConfig;
use crate::error::{Error, Result};

/// Which solver runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// Batched ePIE / rPIE: projection onto the measured amplitudes, then a
    /// normalised object (and probe) update summed over each mini-batch.
    Epie,
    /// Gradient descent on a data loss with explicit (Wirtinger) gradients,
    /// stepped by a least-squares line fit or by Adam.
    Gradient,
}

/// The data loss of the gradient solver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// `Σ (|Ψ̂| − A)²` (Gaussian noise on amplitudes).
    Amplitude,
    /// `Σ |Ψ̂|² − A² log |Ψ̂|²` (Poisson counts, up to the scale `s²`).
    Poisson,
}

/// How the gradient solver turns a gradient into a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// LSQML-style: the gradient preconditioned by the illumination, scaled
    /// by the least-squares optimal step of each mini-batch.
    Lsq,
    /// Adam on the real and imaginary parts.
    Adam,
}

/// `FromStr` for the option enums, with the names serde uses (for CLI flags).
macro_rules! from_str {
    ($ty:ident, $field:literal, $($name:literal => $value:expr),+) => {
        impl std::str::FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($name => Ok($value),)+
                    other => Err(Error::config(
                        $field,
                        format!("`{other}` is not one of {}", [$($name),+].join(", ")),
                    )),
                }
            }
        }
    };
}

from_str!(Algorithm, "algorithm", "epie" => Algorithm::Epie, "gradient" => Algorithm::Gradient);
from_str!(Loss, "gradient.loss", "amplitude" => Loss::Amplitude, "poisson" => Loss::Poisson);
from_str!(Optimizer, "gradient.optimizer", "lsq" => Optimizer::Lsq, "adam" => Optimizer::Adam);

/// Step sizes of [`Algorithm::Epie`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EpieConfig {
    /// Object step α (ePIE: 1); `None`: chosen from the data ([`super::auto`]).
    pub alpha: Option<f64>,
    /// Probe step β (ePIE: 1).
    pub beta: f64,
}

impl Default for EpieConfig {
    fn default() -> Self {
        EpieConfig { alpha: None, beta: 1.0 }
    }
}

/// Loss and optimiser of [`Algorithm::Gradient`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GradientConfig {
    pub loss: Loss,
    pub optimizer: Optimizer,
    /// Adam learning rate, in object units (the object starts at 1); the
    /// probe's step is this times the initial `max |P|`.
    pub learning_rate: f64,
    /// Fraction of the least-squares step taken by `lsq` (pty-chi's
    /// `optimal_step_size_scaler` is 0.9); `None`: chosen from the data
    /// ([`super::auto`]).
    pub step_scale: Option<f64>,
}

impl Default for GradientConfig {
    fn default() -> Self {
        GradientConfig {
            loss: Loss::Amplitude,
            optimizer: Optimizer::Lsq,
            learning_rate: 0.2,
            step_scale: None,
        }
    }
}

/// How to run an iterative reconstruction.
///
/// The settings that matter most for noisy data (the step `epie.alpha` or
/// `gradient.step_scale`, `max_weight`, and the iteration budget) are
/// `None` by default: [`super::auto`] chooses them from the data (photons
/// per pattern and how often each illuminated pixel is measured), as
/// measured on development datasets (docs/quality.md). Any of them given
/// is used as is; the resolved values are recorded in the run's
/// [`SolverSettings`](super::SolverSettings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IterativeConfig {
    pub algorithm: Algorithm,
    /// Epochs: passes over all positions; `None`: chosen from the data.
    pub iterations: Option<usize>,
    /// Positions per mini-batch (clamped to the number of positions); their
    /// updates are computed from the same object and summed.
    pub batch_size: usize,
    /// Weight `w` of the brightest pixel in the normaliser
    /// `(1 − w)·Σ|P|² + w·max Σ|P|²` of the object update (and likewise
    /// `Σ|O|²` for the probe): 1 is ePIE's global `max |P|²`; small values
    /// (rPIE) take longer steps where the illumination is dim. `None`:
    /// chosen from the data.
    pub max_weight: Option<f64>,
    /// Also update the probe.
    pub refine_probe: bool,
    /// First iteration (1-based, as in `IterationRecord::iteration`) that
    /// updates the probe.
    pub probe_start_iteration: usize,
    /// Mini-batch order: the same seed gives the same result on CPU.
    pub seed: u64,
    /// Stop when the data error changes by less than this fraction over an
    /// iteration; 0 runs every iteration.
    pub tolerance: f64,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Positions between pixels shift the probe by their remainder (a
    /// Fourier shift per position); `false` rounds them to whole pixels.
    pub subpixel: bool,
    /// Incoherent probe modes K: `None` uses the dataset's
    /// ([`Dataset::n_probe_modes`](crate::data::Dataset::n_probe_modes));
    /// `Some(K)` keeps the first K of them or adds modes
    /// ([`super::modes::probe_modes`]).
    pub probe_modes: Option<usize>,
    /// Share of the total power each added mode starts with.
    pub new_mode_power: f64,
    /// Position correction ([`super::positions`]).
    pub positions: PositionConfig,
    /// Detector defects left out of the fit ([`crate::data::defects`]).
    pub mask: MaskConfig,
    pub epie: EpieConfig,
    pub gradient: GradientConfig,
}

/// Which measurements the solvers leave out ([`crate::data::defects`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskConfig {
    /// Mask anything at all.
    pub enabled: bool,
    /// Counts at or above this are not fitted; `None`: the automatic rule
    /// (only near a register's ceiling).
    pub saturation_counts: Option<f64>,
    /// Leave out dead pixels (zero in every pattern among lit neighbours).
    pub dead_pixels: bool,
}

impl Default for MaskConfig {
    fn default() -> Self {
        MaskConfig {
            enabled: true,
            saturation_counts: None,
            dead_pixels: true,
        }
    }
}

impl Default for IterativeConfig {
    fn default() -> Self {
        IterativeConfig {
            algorithm: Algorithm::Epie,
            iterations: None,
            batch_size: 10,
            max_weight: None,
            refine_probe: false,
            probe_start_iteration: 2,
            seed: 0,
            tolerance: 0.0,
            device: "auto".into(),
            subpixel: true,
            probe_modes: None,
            new_mode_power: 0.05,
            positions: PositionConfig::default(),
            mask: MaskConfig::default(),
            epie: EpieConfig::default(),
            gradient: GradientConfig::default(),
        }
    }
}

impl IterativeConfig {
    /// Batched ePIE, its settings chosen from the data.
    pub fn epie() -> Self {
        IterativeConfig::default()
    }

    /// Classic ePIE as published: α = 1, β = 1, `max_weight` 1 (the global
    /// `max |P|²` normaliser), 100 iterations; right for noise-free data,
    /// mistuned for counts of a few photons per pixel (docs/quality.md).
    pub fn epie_classic() -> Self {
        IterativeConfig {
            iterations: Some(100),
            max_weight: Some(1.0),
            epie: EpieConfig {
                alpha: Some(1.0),
                beta: 1.0,
            },
            ..IterativeConfig::default()
        }
    }

    /// The gradient solver (least-squares steps, amplitude loss), its
    /// settings chosen from the data.
    pub fn gradient() -> Self {
        IterativeConfig {
            algorithm: Algorithm::Gradient,
            ..IterativeConfig::default()
        }
    }

    /// Parses a TOML configuration (unknown keys are errors).
    pub fn from_toml(text: &str) -> Result<IterativeConfig> {
        toml::from_str(text).map_err(|e| Error::config("iterative config", e.to_string()))
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if let Some(k) = self.iterations
            && (k == 0 || k > 1_000_000)
        {
            return Err(Error::config("iterations", format!("must be in 1..=1000000, got {k}")));
        }
        if self.batch_size == 0 {
            return Err(Error::config("batch_size", "must be at least 1"));
        }
        if let Some(w) = self.max_weight
            && !(w > 0.0 && w <= 1.0)
        {
            return Err(Error::config("max_weight", format!("must be in (0, 1], got {w}")));
        }
        if self.refine_probe && self.probe_start_iteration == 0 {
            return Err(Error::config(
                "probe_start_iteration",
                "must be at least 1 when refine_probe is on",
            ));
        }
        if let Some(k) = self.iterations
            && self.refine_probe
            && self.probe_start_iteration > k
        {
            return Err(Error::config(
                "probe_start_iteration",
                format!(
                    "must be in 1..={k} (iterations) when refine_probe is on, got {}",
                    self.probe_start_iteration
                ),
            ));
        }
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(Error::config(
                "tolerance",
                format!("must be ≥ 0, got {}", self.tolerance),
            ));
        }
        crate::array::parse_device(&self.device)?;
        if let Some(k) = self.probe_modes
            && !(1..=16).contains(&k)
        {
            return Err(Error::config("probe_modes", format!("must be in 1..=16, got {k}")));
        }
        if !(self.new_mode_power > 0.0 && self.new_mode_power < 0.5) {
            return Err(Error::config(
                "new_mode_power",
                format!("must be in (0, 0.5), got {}", self.new_mode_power),
            ));
        }
        self.positions.validate()?;
        if let Some(t) = self.mask.saturation_counts
            && !(t.is_finite() && t > 0.0)
        {
            return Err(Error::config(
                "mask.saturation_counts",
                format!("must be a positive count, got {t}"),
            ));
        }
        for (field, v) in [
            ("epie.alpha", self.epie.alpha),
            ("epie.beta", Some(self.epie.beta)),
            ("gradient.step_scale", self.gradient.step_scale),
        ] {
            if let Some(v) = v
                && !(v > 0.0 && v <= 2.0)
            {
                return Err(Error::config(field, format!("must be in (0, 2], got {v}")));
            }
        }
        let lr = self.gradient.learning_rate;
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::config(
                "gradient.learning_rate",
                format!("must be positive, got {lr}"),
            ));
        }
        Ok(())
    }
}
