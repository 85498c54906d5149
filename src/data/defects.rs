//! Detector defects in measured patterns: saturated counts and dead pixels,
//! the measurements the solvers' losses leave out. No IO.
//!
//! - **Saturation**: a count at or above a threshold is not trusted (a
//!   counting detector's rate limit, an ADC or register ceiling). The
//!   threshold is given, or chosen by [`auto_saturation_counts`]: when the
//!   largest count sits within 2 % below a power of two (2⁸ … 2³², a
//!   register's ceiling), counts from 90 % of it up are masked; otherwise
//!   none.
//! - **Dead pixels**: a detector pixel that is zero in every pattern while
//!   its eight neighbours average at least one count per pattern (for a
//!   live pixel with a Poisson rate of 1 the chance of n zeros is e⁻ⁿ).
use ndarray::{Array2, Array3, Axis};
use serde::{Deserialize, Serialize};

use super::Dataset;

/// The defects found in a dataset's patterns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefectSummary {
    /// Counts at or above this are masked; `None`: no saturation mask.
    pub saturation_counts: Option<f64>,
    /// How the threshold was chosen (`given`, `auto: …`, `none`).
    pub saturation_rule: String,
    /// Pattern pixels at or above the threshold.
    pub saturated_values: usize,
    /// Detector pixels found dead (masked in every pattern).
    pub dead_pixels: usize,
    /// The largest count in the data.
    pub max_count: f64,
}

/// Relative tolerance of "at or above the threshold": counts come back from
/// float32 amplitudes as `(s·X)²`, up to two float32 ulps off (65535 may
/// read 65534.99), and a threshold equal to a count must catch it.
pub const COUNT_RTOL: f64 = 2.5e-7;

/// Whether `count` is at or above `threshold` (within [`COUNT_RTOL`]).
pub fn saturated(count: f32, threshold: f64) -> bool {
    count as f64 >= threshold * (1.0 - COUNT_RTOL)
}

/// The saturation threshold and how it was chosen: `given` when there is
/// one, else [`auto_saturation_counts`] of the largest count, else none.
pub fn saturation_threshold(given: Option<f64>, max_count: f64) -> (Option<f64>, String) {
    match given {
        Some(t) => (Some(t), "given".to_string()),
        None => match auto_saturation_counts(max_count) {
            Some((t, rule)) => (Some(t), rule),
            None => (
                None,
                "none: the largest count is not near a register's ceiling".to_string(),
            ),
        },
    }
}

/// The counts `(s·X)²` of a dataset (`s` its intensity scale, 1 when not
/// recorded), `[n, N, N]`.
pub fn counts(ds: &Dataset) -> Array3<f32> {
    let s = ds.metadata.intensity_scale.unwrap_or(1.0) as f32;
    ds.diffraction.mapv(|a| (s * a) * (s * a))
}

/// The saturation threshold chosen from the largest count (module docs):
/// `Some((threshold, rule))` or `None`.
pub fn auto_saturation_counts(max_count: f64) -> Option<(f64, String)> {
    (8..=32).find_map(|bits| {
        let ceiling = 2f64.powi(bits);
        (max_count <= ceiling && max_count >= 0.98 * ceiling).then(|| {
            (
                0.9 * max_count,
                format!("auto: the largest count {max_count} is within 2 % of 2^{bits}; counts ≥ 90 % of it masked"),
            )
        })
    })
}

/// Dead detector pixels `[N, N]` (module docs) of counts `[n, N, N]`.
pub fn dead_pixels(counts: &Array3<f32>) -> Array2<bool> {
    let n = counts.shape()[0] as f64;
    let total = counts.sum_axis(Axis(0)).mapv(|c| c as f64);
    let (h, w) = total.dim();
    Array2::from_shape_fn((h, w), |(i, j)| {
        if total[(i, j)] > 0.0 {
            return false;
        }
        let (mut sum, mut neighbours) = (0.0, 0usize);
        for di in -1i64..=1 {
            for dj in -1i64..=1 {
                let (r, c) = (i as i64 + di, j as i64 + dj);
                if (di, dj) != (0, 0) && r >= 0 && c >= 0 && (r as usize) < h && (c as usize) < w {
                    sum += total[(r as usize, c as usize)];
                    neighbours += 1;
                }
            }
        }
        neighbours > 0 && sum / (neighbours as f64 * n) >= 1.0
    })
}

/// Which measurements to fit `[n, N, N]` (false: masked) and what was
/// found. `saturation_counts`: `Some(t)` masks counts ≥ t; `None` uses
/// [`auto_saturation_counts`]. `dead`: also mask dead pixels.
pub fn defect_mask(ds: &Dataset, saturation_counts: Option<f64>, dead: bool) -> (Array3<bool>, DefectSummary) {
    let counts = counts(ds);
    let max_count = counts.iter().fold(0f32, |m, &c| m.max(c)) as f64;
    let (threshold, rule) = saturation_threshold(saturation_counts, max_count);
    let dead_map = if dead {
        dead_pixels(&counts)
    } else {
        Array2::from_elem((counts.shape()[1], counts.shape()[2]), false)
    };
    let mut saturated_values = 0;
    let mut fitted = Array3::from_elem(counts.dim(), true);
    for (mut keep, pattern) in fitted.outer_iter_mut().zip(counts.outer_iter()) {
        for ((k, &c), &d) in keep.iter_mut().zip(pattern.iter()).zip(dead_map.iter()) {
            let saturated = threshold.is_some_and(|t| saturated(c, t));
            saturated_values += saturated as usize;
            *k = !(saturated || d);
        }
    }
    let summary = DefectSummary {
        saturation_counts: threshold,
        saturation_rule: rule,
        saturated_values,
        dead_pixels: dead_map.iter().filter(|&&d| d).count(),
        max_count,
    };
    (fitted, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auto_threshold_fires_only_near_a_register_ceiling() {
        let (t, rule) = auto_saturation_counts(32541.0).unwrap();
        assert!((t - 0.9 * 32541.0).abs() < 1e-9 && rule.contains("2^15"), "{rule}");
        assert!(auto_saturation_counts(963.0).is_none());
        assert!(auto_saturation_counts(65535.0).is_some());
        assert!(auto_saturation_counts(40000.0).is_none());
    }

    #[test]
    fn a_pixel_dark_in_every_pattern_among_lit_neighbours_is_dead() {
        // 50 patterns of 4×4 with two counts everywhere except (1, 2) (dead)
        // and the corner (0, 0) whose neighbours see 0.4 per pattern (dim,
        // not dead)
        let mut counts = Array3::from_elem((50, 4, 4), 2.0f32);
        for mut p in counts.outer_iter_mut() {
            p[(1, 2)] = 0.0;
            p[(0, 0)] = 0.0;
            p[(0, 1)] = 0.4;
            p[(1, 0)] = 0.4;
            p[(1, 1)] = 0.4;
        }
        let dead = dead_pixels(&counts);
        assert_eq!(dead.iter().filter(|&&d| d).count(), 1);
        assert!(dead[(1, 2)]);
    }
}
