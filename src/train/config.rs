//! `TrainConfig` and its presets.
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::grouping::GroupingConfig;
use crate::model::LossWeights;

/// How to train (PtychoPINN's Keras recipe by default, ptychopinn.md §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam's initial step size.
    pub learning_rate: f64,
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
    /// K = 4 neighbours.
    pub fn paper() -> Self {
        TrainConfig {
            epochs: 50,
            batch_size: 16,
            learning_rate: 1e-3,
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
        }
    }

    /// A few CPU minutes at N = 64: the paper's recipe on 256 groups for 5 epochs.
    pub fn quick() -> Self {
        let mut c = TrainConfig::paper();
        c.epochs = 5;
        c.grouping.n_groups = Some(256);
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
