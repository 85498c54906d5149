//! `TrainConfig` and its presets.
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::grouping::GroupingConfig;
use crate::model::{LossWeights, ModelConfig};

/// How the learning rate moves during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// Keras' reduce-on-plateau (PtychoPINN): `plateau_*` fields.
    Plateau,
    /// Linear warm-up over `warmup_steps`, then a cosine from
    /// `learning_rate` down to `min_learning_rate` at the last step.
    Cosine,
}

/// Arithmetic of the network's training and inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// float32 with libtorch's defaults: on CUDA, cuDNN's convolutions may
    /// use TF32 tensor cores (10-bit mantissa products, float32 sums), as
    /// PyTorch's do by default.
    #[default]
    Fp32,
    /// float32 throughout, TF32 off for cuDNN's convolutions too
    /// ([`crate::runtime::set_cudnn_tf32`]). On the CPU the same as `fp32`.
    Fp32Strict,
    /// CUDA autocast to float16 (losses in float32; in training, with a
    /// dynamic loss scale, see [`crate::train::scaler`]); CUDA only.
    Fp16,
    /// Autocast to bfloat16 on CUDA or the CPU ([`crate::autocast`]):
    /// float32's exponent range with an 8-bit mantissa, so no loss scale.
    /// On a CPU with AVX-512 BF16 (or AMX) oneDNN's convolutions run in it
    /// natively.
    Bf16,
}

impl Precision {
    /// Every precision, in the order the CLI lists them.
    pub const ALL: [Precision; 4] = [Precision::Fp32, Precision::Fp32Strict, Precision::Fp16, Precision::Bf16];

    /// `fp32`, `fp32-strict`, `fp16` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp32Strict => "fp32-strict",
            Precision::Fp16 => "fp16",
            Precision::Bf16 => "bf16",
        }
    }

    /// An error for fp16 on a device other than CUDA.
    pub fn check(self, device: tch::Device) -> Result<()> {
        if self == Precision::Fp16 && !device.is_cuda() {
            return Err(Error::config("precision", "fp16 autocast needs a CUDA device"));
        }
        Ok(())
    }

    /// The dtype the forward pass is autocast to, if any.
    pub fn autocast(self) -> Option<tch::Kind> {
        match self {
            Precision::Fp32 | Precision::Fp32Strict => None,
            Precision::Fp16 => Some(tch::Kind::Half),
            Precision::Bf16 => Some(tch::Kind::BFloat16),
        }
    }

    /// Whether training keeps a dynamic loss scale (float16's narrow
    /// exponent range underflows small gradients; bfloat16's does not).
    pub fn loss_scale(self) -> bool {
        self == Precision::Fp16
    }

    /// Runs `f` (a forward pass) in this precision on `device`: under
    /// autocast for fp16 and bf16, as is for fp32 and fp32-strict.
    pub fn run<T>(self, device: tch::Device, f: impl FnOnce() -> T) -> Result<T> {
        match self.autocast() {
            Some(kind) => crate::autocast::autocast(device, kind, f),
            None => Ok(f()),
        }
    }

    /// Sets what this precision needs of the process on `device` before a
    /// run: on CUDA, TF32 in cuDNN's convolutions off for `fp32-strict` (an
    /// error if it cannot be switched off) and back on (libtorch's default)
    /// otherwise, so that an earlier strict run in the same process does not
    /// carry over (where it cannot be switched, it was never switched off).
    /// Nothing on the CPU.
    pub fn apply(self, device: tch::Device) -> Result<()> {
        if device.is_cuda() {
            let allow = self != Precision::Fp32Strict;
            if let Err(e) = crate::runtime::set_cudnn_tf32(allow)
                && !allow
            {
                return Err(e);
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Precision::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Precision::ALL.iter().map(|p| p.name()).collect();
            Error::config("precision", format!("`{s}` is not one of {}", names.join(", ")))
        })
    }
}

/// How to train (PtychoPINN's Keras recipe by default, ptychopinn.md §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam's initial step size.
    pub learning_rate: f64,
    pub lr_schedule: LrSchedule,
    /// Steps of linear warm-up from `learning_rate / warmup_steps` (both
    /// schedules; the plateau rate is scaled the same way while it lasts).
    pub warmup_steps: usize,
    /// Reduce-on-plateau: factor, patience (epochs without a better
    /// validation loss) and floor.
    pub plateau_factor: f64,
    pub plateau_patience: usize,
    pub min_learning_rate: f64,
    /// Stop after this many epochs without a better training loss.
    pub early_stopping_patience: usize,
    /// Fraction of the groups held out for the validation loss.
    pub validation_fraction: f64,
    /// Seeds the validation split and the shuffling.
    pub seed: u64,
    pub loss: LossWeights,
    /// How to group positions (its gridsize is taken from the model).
    pub grouping: GroupingConfig,
    /// fp32 (libtorch's defaults), fp32-strict (no TF32), fp16 autocast
    /// with a dynamic loss scale (CUDA only) or bf16 autocast (CUDA or CPU).
    pub precision: Precision,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig::paper()
    }
}

impl TrainConfig {
    /// The published defaults (PtychoPINN `TrainingConfig` and Keras
    /// callbacks): 50 epochs, batch 16, Adam 1e-3, plateau ×0.5 after 2
    /// epochs down to 1e-4, early stop after 3, 5 % validation, 512 groups,
    /// K = 4 neighbours; plus a 50-step linear warm-up, which PtychoPINN
    /// lacks. Without it, one of two paper runs on the quickstart data
    /// (gridsize 1) drove its phase head into `π·tanh`'s flat end within the
    /// first epoch and never left: a flat phase, scoring as the constant
    /// object. The quick preset, always warmed up, never did.
    pub fn paper() -> Self {
        TrainConfig {
            epochs: 50,
            batch_size: 16,
            learning_rate: 1e-3,
            lr_schedule: LrSchedule::Plateau,
            warmup_steps: 50,
            plateau_factor: 0.5,
            plateau_patience: 2,
            min_learning_rate: 1e-4,
            early_stopping_patience: 3,
            validation_fraction: 0.05,
            seed: 0,
            loss: LossWeights::default(),
            grouping: GroupingConfig {
                n_groups: Some(512),
                k_neighbours: 4,
                ..GroupingConfig::default()
            },
            precision: Precision::Fp32,
        }
    }

    /// A few CPU minutes at N = 64 on the quickstart's 1049 training
    /// patterns (about 4.7 min on 2 cores for gridsize 2): up to 1024
    /// groups for 8 epochs, with a 50-step warm-up and a cosine from 1e-3 to
    /// 1e-4 instead of reduce-on-plateau, which never fires in 8 epochs.
    /// (The earlier 256 groups × 5 epochs, 80 steps, left the network at
    /// the constant-object stage.)
    pub fn quick() -> Self {
        let mut c = TrainConfig::paper();
        c.epochs = 8;
        c.grouping.n_groups = Some(1024);
        c.lr_schedule = LrSchedule::Cosine;
        c
    }

    /// The warm-up's factor on the learning rate at step `step` (0-based):
    /// `(step + 1) / warmup_steps` during the warm-up, then 1.
    pub fn warmup_factor(&self, step: i64) -> f64 {
        let warm = self.warmup_steps as i64;
        if step < warm {
            (step + 1) as f64 / warm as f64
        } else {
            1.0
        }
    }

    /// The learning rate of step `step` (0-based) of `total_steps` under a
    /// per-step schedule; `None` for reduce-on-plateau, which moves it only
    /// between epochs (times [`warmup_factor`](Self::warmup_factor)).
    pub fn scheduled_learning_rate(&self, step: i64, total_steps: i64) -> Option<f64> {
        match self.lr_schedule {
            LrSchedule::Plateau => None,
            LrSchedule::Cosine => {
                let warm = self.warmup_steps as i64;
                if step < warm {
                    return Some(self.learning_rate * self.warmup_factor(step));
                }
                let span = (total_steps - 1 - warm).max(1) as f64;
                let p = ((step - warm) as f64 / span).clamp(0.0, 1.0);
                let (hi, lo) = (self.learning_rate, self.min_learning_rate.min(self.learning_rate));
                Some(lo + 0.5 * (hi - lo) * (1.0 + (std::f64::consts::PI * p).cos()))
            }
        }
    }

    /// This configuration as training with `model` uses it: the grouping's
    /// gridsize is the model's (the field's own value is not read). Saved
    /// configurations (a job's `config.json`, a bundle's manifest) record
    /// this form, so they never show a gridsize the run did not use.
    pub fn resolved_for(&self, model: &ModelConfig) -> TrainConfig {
        let mut c = self.clone();
        c.grouping.gridsize = model.gridsize;
        c
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::config("train.epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("train.batch_size", "must be at least 1"));
        }
        for (field, v) in [
            ("train.learning_rate", self.learning_rate),
            ("train.min_learning_rate", self.min_learning_rate),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::config(field, format!("must be positive, got {v}")));
            }
        }
        if !(self.plateau_factor > 0.0 && self.plateau_factor <= 1.0) {
            return Err(Error::config(
                "train.plateau_factor",
                format!("must be in (0, 1], got {}", self.plateau_factor),
            ));
        }
        if !(0.0..0.5).contains(&self.validation_fraction) {
            return Err(Error::config(
                "train.validation_fraction",
                format!("must be in [0, 0.5), got {}", self.validation_fraction),
            ));
        }
        let w = &self.loss;
        for (field, v) in [
            ("train.loss.poisson_nll", w.poisson_nll),
            ("train.loss.amplitude_mae", w.amplitude_mae),
            ("train.loss.total_variation", w.total_variation),
            ("train.loss.phase_gauge", w.phase_gauge),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::config(field, format!("must be ≥ 0, got {v}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_warms_up_then_falls_to_the_floor() {
        let c = TrainConfig {
            lr_schedule: LrSchedule::Cosine,
            warmup_steps: 4,
            learning_rate: 1e-3,
            min_learning_rate: 1e-5,
            ..TrainConfig::paper()
        };
        // 105 steps: 4 of warm-up, then steps 4..=104 span the cosine
        let lr = |s| c.scheduled_learning_rate(s, 105).unwrap();
        assert!((lr(0) - 2.5e-4).abs() < 1e-12);
        assert!((lr(3) - 1e-3).abs() < 1e-12);
        assert!((lr(4) - 1e-3).abs() < 1e-12);
        // half way through the cosine: the mean of the ends
        assert!((lr(4 + 50) - 0.5 * (1e-3 + 1e-5)).abs() < 1e-12);
        assert!((lr(104) - 1e-5).abs() < 1e-12);
        assert!((4..104).all(|s| lr(s + 1) < lr(s)));
        assert_eq!(TrainConfig::paper().scheduled_learning_rate(10, 105), None);
    }

    #[test]
    fn the_plateau_schedule_warms_up_too() {
        let c = TrainConfig {
            warmup_steps: 4,
            ..TrainConfig::paper()
        };
        assert_eq!(c.lr_schedule, LrSchedule::Plateau);
        let f: Vec<f64> = (0..6).map(|s| c.warmup_factor(s)).collect();
        assert_eq!(f, [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
        let none = TrainConfig {
            warmup_steps: 0,
            ..TrainConfig::paper()
        };
        assert_eq!(none.warmup_factor(0), 1.0);
    }

    #[test]
    fn every_precision_parses_from_its_name_and_others_are_refused() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
            let toml = format!("precision = \"{}\"", p.name());
            assert_eq!(toml::from_str::<TrainConfig>(&toml).unwrap().precision, p);
        }
        let e = "bf32".parse::<Precision>().unwrap_err().to_string();
        assert!(e.contains("`bf32` is not one of fp32, fp32-strict, fp16, bf16"), "{e}");
        // the loss scale is float16's alone; bf16 runs on the CPU too
        assert!(Precision::Fp16.loss_scale() && !Precision::Bf16.loss_scale());
        assert!(Precision::Fp16.check(tch::Device::Cpu).is_err());
        assert!(Precision::Bf16.check(tch::Device::Cpu).is_ok());
    }
}
