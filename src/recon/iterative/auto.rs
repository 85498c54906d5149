//! The iterative solvers' data-driven settings: the step (ePIE's α, the
//! gradient solver's step scale), `max_weight` and the iteration budget,
//! chosen from how many patterns measure each illuminated pixel (the
//! redundancy). The photons per pattern are read and recorded too, but on
//! the development datasets (10³ to 10⁹ photons) they did not move the
//! best setting: small steps averaged over many patterns win at every dose
//! (the noise is averaged; without noise they converge as well), and the
//! redundancy decides whether iterating helps at all. Measured on
//! development datasets only (docs/quality.md, `examples/tune_iterative.rs`);
//! the quality suite reports on held-out seeds.
use serde::{Deserialize, Serialize};

use super::config::{Algorithm, IterativeConfig};
use crate::data::Dataset;
use crate::data::product::canvas_shape;
use crate::error::Result;
use crate::physics::illumination::{SUPPORT_ENERGY_FRACTION, probe_support, redundancy};

/// What the choice reads from a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DataStats {
    /// Mean counts per pattern, `mean_k Σ (s·X_k)²` with the dataset's
    /// intensity scale `s`, else its recorded dose; `None` when neither is
    /// known. Recorded; the rule does not need it (module docs).
    pub photons_per_pattern: Option<f64>,
    /// How many patterns measure a typical illuminated pixel
    /// ([`crate::physics::redundancy`] of the probe's 90 %-energy support).
    pub redundancy: f64,
}

impl DataStats {
    /// Reads the statistics of `ds`.
    pub fn of(ds: &Dataset) -> Result<DataStats> {
        let photons_per_pattern = match ds.metadata.intensity_scale {
            Some(s) if s.is_finite() && s > 0.0 => {
                let total: f64 = ds.diffraction.iter().map(|&x| (x as f64) * (x as f64)).sum();
                Some(s * s * total / ds.n_images().max(1) as f64)
            }
            _ => ds.metadata.n_photons.filter(|v| v.is_finite() && *v > 0.0),
        };
        let n = ds.patch_size();
        let shape = match &ds.object {
            Some(o) => [o.nrows(), o.ncols()],
            None => canvas_shape(&ds.positions_px, n),
        };
        let support = probe_support(ds.probe.view(), SUPPORT_ENERGY_FRACTION)?;
        Ok(DataStats {
            photons_per_pattern,
            redundancy: redundancy(support.view(), ds.positions_px.view(), shape)?,
        })
    }
}

/// The settings a run used, after the data-driven choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolverSettings {
    pub iterations: usize,
    pub max_weight: f64,
    /// ePIE's object step α, or the gradient solver's step scale.
    pub step: f64,
    /// Which of them were chosen from the data (the others were given).
    pub chosen: Vec<String>,
    /// What the choice read, when anything was chosen.
    pub stats: Option<DataStats>,
}

/// Below this redundancy (patterns per illuminated pixel) the data cannot
/// pin the object down: each pattern alone is a phase-retrieval problem
/// with many data-consistent answers, and every setting we tried drifted
/// away from the truth while the data error fell (at 1.0 and 1.28 the
/// best of the grid was the smallest step for the fewest iterations; at
/// 2.4 iterating paid off; docs/quality.md). The solvers then stay near
/// their start.
pub const SPARSE_REDUNDANCY: f64 = 1.8;

/// The settings below [`SPARSE_REDUNDANCY`]: a few small steps.
const SPARSE: (f64, f64, usize) = (0.03, 1.0, 5);

/// Redundancies between which the iteration budget falls from its
/// moderate-overlap value to its dense one (geometrically).
const MODERATE_REDUNDANCY: f64 = 4.0;
const DENSE_REDUNDANCY: f64 = 8.0;

/// The rule (the measurements behind it: docs/quality.md and
/// `examples/tune_iterative.rs`, development datasets only). With overlap,
/// every pixel should move by about the same amount per iteration however
/// many patterns measure it, so the step falls as the redundancy `r`
/// grows: ePIE's α = 2.5/r and the gradient solver's step scale = 1.2/r,
/// clamped to [0.1, 1] and [0.1, 0.9]; `max_weight` 0.5 (ePIE) and 1
/// (gradient). Moderate overlap (r ≤ 4) converges slowly: 200 iterations;
/// dense scans (r ≥ 8) need 100 (ePIE) or 50 (gradient, each iteration
/// several times dearer); geometric in between. The photons per pattern did
/// not move the best setting (10³–10⁹). Without overlap
/// (r < [`SPARSE_REDUNDANCY`]): α 0.03, `max_weight` 1, 5 iterations.
/// Returns `(step, max_weight, iterations)`.
pub fn choose(algorithm: Algorithm, stats: &DataStats) -> (f64, f64, usize) {
    let r = stats.redundancy;
    if r.is_nan() || r < SPARSE_REDUNDANCY {
        return SPARSE;
    }
    let (scale, max_step, max_weight, dense_iterations): (f64, f64, f64, f64) = match algorithm {
        Algorithm::Epie => (2.5, 1.0, 0.5, 100.0),
        Algorithm::Gradient => (1.2, 0.9, 1.0, 50.0),
    };
    let step = (scale / r).clamp(0.1, max_step);
    let t = ((r.ln() - MODERATE_REDUNDANCY.ln()) / (DENSE_REDUNDANCY.ln() - MODERATE_REDUNDANCY.ln())).clamp(0.0, 1.0);
    let iterations = (200f64.ln() + t * (dense_iterations.ln() - 200f64.ln())).exp().round() as usize;
    (step, max_weight, iterations)
}

/// Resolves `cfg` on `ds`: every setting given is kept, every `None` is
/// chosen by [`choose`].
pub fn resolve(cfg: &IterativeConfig, ds: &Dataset) -> Result<SolverSettings> {
    let given_step = match cfg.algorithm {
        Algorithm::Epie => cfg.epie.alpha,
        Algorithm::Gradient => cfg.gradient.step_scale,
    };
    let mut chosen = Vec::new();
    let stats = if given_step.is_none() || cfg.max_weight.is_none() || cfg.iterations.is_none() {
        Some(DataStats::of(ds)?)
    } else {
        None
    };
    let (step, max_weight, iterations) = stats.as_ref().map_or((0.0, 0.0, 0), |s| choose(cfg.algorithm, s));
    let mut pick = |given: Option<f64>, auto: f64, name: &str| {
        given.unwrap_or_else(|| {
            chosen.push(name.to_string());
            auto
        })
    };
    let step = pick(
        given_step,
        step,
        match cfg.algorithm {
            Algorithm::Epie => "epie.alpha",
            Algorithm::Gradient => "gradient.step_scale",
        },
    );
    let max_weight = pick(cfg.max_weight, max_weight, "max_weight");
    let iterations = match cfg.iterations {
        Some(k) => k,
        None => {
            chosen.push("iterations".into());
            iterations
        }
    };
    Ok(SolverSettings {
        iterations,
        max_weight,
        step,
        chosen,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(r: f64) -> DataStats {
        DataStats {
            photons_per_pattern: Some(1e4),
            redundancy: r,
        }
    }

    #[test]
    fn the_rule_by_redundancy() {
        // no overlap: a few small steps, whatever the solver
        for algorithm in [Algorithm::Epie, Algorithm::Gradient] {
            assert_eq!(choose(algorithm, &at(1.0)), SPARSE);
            assert_eq!(choose(algorithm, &at(0.0)), SPARSE);
            assert_eq!(choose(algorithm, &at(f64::NAN)), SPARSE);
        }
        // the measured anchors: dense random scans (r ≈ 29) and rasters at
        // 12 and 16 px (r ≈ 4.0, 2.4)
        assert_eq!(choose(Algorithm::Epie, &at(29.0)), (0.1, 0.5, 100));
        assert_eq!(choose(Algorithm::Gradient, &at(29.0)), (0.1, 1.0, 50));
        let (a, w, k) = choose(Algorithm::Epie, &at(3.96));
        assert!((a - 2.5 / 3.96).abs() < 1e-12 && w == 0.5 && k == 200);
        assert_eq!(choose(Algorithm::Epie, &at(2.38)), (1.0, 0.5, 200));
        let (g, _, k) = choose(Algorithm::Gradient, &at(2.38));
        assert!((g - 1.2 / 2.38).abs() < 1e-12 && k == 200);
        // the budget falls steadily from moderate to dense overlap
        let budgets: Vec<usize> = [4.0, 5.0, 6.0, 7.0, 8.0]
            .iter()
            .map(|&r| choose(Algorithm::Epie, &at(r)).2)
            .collect();
        assert!(
            budgets.windows(2).all(|p| p[0] > p[1]) && budgets[4] == 100,
            "{budgets:?}"
        );
    }
}
