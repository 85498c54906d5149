//! What a researcher checks first in a measured dataset (`ptycho dataset
//! inspect`): photons per pattern, the largest count and whether the detector
//! clipped, dead pixels, the probe modes' power, and whether the mean pattern
//! looks like the probe's far field (same centre, same scale). No file IO.
//!
//! Counts are `(s·X)²` with `s = metadata.intensity_scale` (1 when unknown;
//! then "counts" are squared amplitudes and `counts_calibrated` is false).
//!
//! Saturation and dead pixels follow [`super::defects`], the rules that
//! decide what the solvers leave out: a threshold given by the user
//! (`--saturation COUNTS`; counts within float32 rounding of it count), or the
//! automatic one (the largest count within 2 % below a power of two 2⁸…2³²:
//! counts from 90 % of it up). Two more checks are reported beside them:
//! - a pile-up at the maximum (`pile_up_at_max`): at least
//!   [`PILE_MIN_PIXELS`] pixels hold exactly the largest count and it is at
//!   least [`PILE_MIN_COUNT`]; Poisson noise spreads large counts, a
//!   clipped detector stacks them at its ceiling, wherever that is (the
//!   automatic threshold only knows powers of two; give `--saturation`);
//! - pixels zero in every pattern (`zero_pixels`), of which `dead_pixels`
//!   are those [`super::defects::dead_pixels`] calls dead (lit neighbours).
use std::fmt;

use ndarray::{Array2, Axis};
use serde::Serialize;
use tch::Device;

use super::dataset::Dataset;
use super::defects;
use crate::array::{c64_to_tensor, tensor_to_f32};
use crate::error::Result;

/// Pixels that must share the maximum count to call it a pile-up.
pub const PILE_MIN_PIXELS: usize = 3;
/// Smallest maximum count the pile-up check considers (below it, equal
/// counts are common in any data).
pub const PILE_MIN_COUNT: f64 = 100.0;
/// Zero pixels listed by position (all are counted).
const LISTED_ZERO: usize = 10;

/// Mean, smallest and largest of a quantity over the patterns.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Spread {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

/// Counts at or above the saturation threshold ([`super::defects`]).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Saturation {
    /// How the threshold was chosen (`given`, `auto: …`, `none: …`).
    pub rule: String,
    /// `None`: nothing is taken as saturated.
    pub threshold_counts: Option<f64>,
    /// (pattern, pixel) values at or above the threshold (within float32
    /// rounding).
    pub values: usize,
    /// Patterns with at least one such value.
    pub patterns: usize,
    /// Distinct detector pixels with such a value in some pattern.
    pub detector_pixels: usize,
    /// At least [`PILE_MIN_PIXELS`] values equal the maximum count, which
    /// is at least [`PILE_MIN_COUNT`]: a ceiling (module docs).
    pub pile_up_at_max: bool,
}

/// How well the mean measured pattern matches the probe's far field
/// `F = Σ_k |FFT2_ortho(P_k)|²` (zero frequency at `(N/2, N/2)`).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct FarFieldAgreement {
    /// Pearson correlation of the mean counts with `F` (`None`: a constant image).
    pub correlation: Option<f64>,
    /// The same of `log10(1 + counts)` with `log10(1 + c·F)`, `F` scaled by
    /// `c` to the same total: the dim outer pixels weigh in.
    pub log_correlation: Option<f64>,
    /// `correlation` with `F`'s zero frequency at the corner: above
    /// `correlation`, the patterns' zero frequency is not at `(N/2, N/2)`.
    pub correlation_unshifted: Option<f64>,
    /// Mean counts per pattern / `Σ_k Σ|P_k|²`: 1 for an imported tike
    /// scan (its probe is scaled so); the object's mean `|transmission|²`
    /// when the probe holds the incident photons.
    pub counts_over_probe_power: f64,
}

/// The numbers `ptycho dataset inspect` prints (serialisable for `--json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Inspection {
    pub n_patterns: usize,
    pub patch_size: usize,
    /// `s` in counts `(s·X)²`; 1 when the dataset does not know it.
    pub intensity_scale: f64,
    pub counts_calibrated: bool,
    /// Total counts per pattern.
    pub photons_per_pattern: Spread,
    pub max_count: f64,
    /// `[pattern, row, column]` of the first value holding the maximum.
    pub max_count_at: [usize; 3],
    /// (pattern, pixel) values equal to the maximum count.
    pub values_at_max: usize,
    pub saturation: Saturation,
    /// Detector pixels that are zero in every pattern.
    pub zero_pixels: usize,
    /// The first of them, `[row, column]` (zero frequency at `[N/2, N/2]`).
    pub zero_pixels_listed: Vec<[usize; 2]>,
    /// Those of them the solvers mask as dead ([`defects::dead_pixels`]).
    pub dead_pixels: usize,
    pub n_probe_modes: usize,
    /// `Σ_k Σ|P_k|²`.
    pub probe_power: f64,
    /// Each mode's share of `probe_power`, in the dataset's order.
    pub probe_power_fractions: Vec<f64>,
    pub mean_vs_probe: FarFieldAgreement,
}

/// Mean counts `(s·X)²` over the patterns. # Shapes: `[N, N]`.
pub fn mean_pattern_counts(ds: &Dataset) -> Array2<f64> {
    let s2 = ds.metadata.intensity_scale.unwrap_or(1.0).powi(2);
    let mut sum = Array2::<f64>::zeros((ds.patch_size(), ds.patch_size()));
    for p in ds.diffraction.outer_iter() {
        ndarray::Zip::from(&mut sum)
            .and(&p)
            .for_each(|a, &x| *a += s2 * (x as f64) * (x as f64));
    }
    sum / ds.n_images().max(1) as f64
}

/// The probe's far field `Σ_k |FFT2_ortho(P_k)|²`, zero frequency at
/// `(N/2, N/2)` (docs/physics.md); its sum is `Σ_k Σ|P_k|²`. # Shapes: `[N, N]`.
pub fn probe_far_field(ds: &Dataset) -> Result<Array2<f64>> {
    let modes = c64_to_tensor(&ds.probe_modes(), Device::Cpu);
    let f = crate::physics::far_field_intensity(&modes).sum_dim_intlist(0, false, tch::Kind::Float);
    let a = tensor_to_f32(&f)?;
    Ok(a.into_dimensionality().expect("2-D").mapv(|v| v as f64))
}

fn pearson(pairs: &[(f64, f64)]) -> Option<f64> {
    let n = pairs.len() as f64;
    let (ma, mb) = pairs.iter().fold((0.0, 0.0), |(x, y), (u, v)| (x + u / n, y + v / n));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (u, v) in pairs {
        sab += (u - ma) * (v - mb);
        saa += (u - ma) * (u - ma);
        sbb += (v - mb) * (v - mb);
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

/// Inspects `ds`; `saturation_counts` replaces the automatic saturation
/// threshold (module docs).
pub fn inspect(ds: &Dataset, saturation_counts: Option<f64>) -> Result<Inspection> {
    let n = ds.n_images();
    let big_n = ds.patch_size();
    let counts = defects::counts(ds);

    let mut totals = Vec::with_capacity(n);
    let (mut max, mut max_at) = (f32::NEG_INFINITY, [0usize; 3]);
    for (i, p) in counts.outer_iter().enumerate() {
        totals.push(p.iter().map(|&c| c as f64).sum::<f64>());
        for ((r, c), &v) in p.indexed_iter() {
            if v > max {
                (max, max_at) = (v, [i, r, c]);
            }
        }
    }
    let photons = Spread {
        mean: totals.iter().sum::<f64>() / n.max(1) as f64,
        min: totals.iter().cloned().fold(f64::INFINITY, f64::min),
        max: totals.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
    };
    let values_at_max = counts.iter().filter(|&&c| c == max).count();

    let (threshold, rule) = defects::saturation_threshold(saturation_counts, max as f64);
    let mut hit = Array2::<bool>::from_elem((big_n, big_n), false);
    let (mut values, mut patterns) = (0, 0);
    if let Some(t) = threshold {
        for p in counts.outer_iter() {
            let before = values;
            for ((r, c), &v) in p.indexed_iter() {
                if defects::saturated(v, t) {
                    values += 1;
                    hit[[r, c]] = true;
                }
            }
            patterns += usize::from(values > before);
        }
    }
    let saturation = Saturation {
        rule,
        threshold_counts: threshold,
        values,
        patterns,
        detector_pixels: hit.iter().filter(|&&h| h).count(),
        pile_up_at_max: values_at_max >= PILE_MIN_PIXELS && max as f64 >= PILE_MIN_COUNT,
    };

    let lit = counts.map_axis(Axis(0), |v| v.iter().any(|&c| c > 0.0));
    let zero: Vec<[usize; 2]> = lit
        .indexed_iter()
        .filter(|(_, l)| !**l)
        .map(|((r, c), _)| [r, c])
        .collect();
    let dead_pixels = defects::dead_pixels(&counts).iter().filter(|&&d| d).count();

    let modes = ds.probe_modes();
    let powers: Vec<f64> = modes
        .outer_iter()
        .map(|m| m.iter().map(|c| c.norm_sqr() as f64).sum())
        .collect();
    let probe_power: f64 = powers.iter().sum();

    let mean = mean_pattern_counts(ds);
    let far = probe_far_field(ds)?;
    let far_total = far.sum();
    let c = if far_total > 0.0 { mean.sum() / far_total } else { 0.0 };
    let h = big_n / 2;
    let unshifted = Array2::from_shape_fn((big_n, big_n), |(r, col)| far[[(r + h) % big_n, (col + h) % big_n]]);
    let pairs = |b: &Array2<f64>| mean.iter().cloned().zip(b.iter().cloned()).collect::<Vec<_>>();
    let lin = pairs(&far);
    let logs: Vec<(f64, f64)> = lin
        .iter()
        .map(|&(u, v)| ((1.0 + u).log10(), (1.0 + c * v).log10()))
        .collect();
    let mean_vs_probe = FarFieldAgreement {
        correlation: pearson(&lin),
        log_correlation: pearson(&logs),
        correlation_unshifted: pearson(&pairs(&unshifted)),
        counts_over_probe_power: photons.mean / probe_power,
    };
    Ok(Inspection {
        n_patterns: n,
        patch_size: big_n,
        intensity_scale: ds.metadata.intensity_scale.unwrap_or(1.0),
        counts_calibrated: ds.metadata.intensity_scale.is_some(),
        photons_per_pattern: photons,
        max_count: max as f64,
        max_count_at: max_at,
        values_at_max,
        saturation,
        zero_pixels: zero.len(),
        zero_pixels_listed: zero.into_iter().take(LISTED_ZERO).collect(),
        dead_pixels,
        n_probe_modes: modes.len_of(Axis(0)),
        probe_power,
        probe_power_fractions: powers.iter().map(|p| p / probe_power).collect(),
        mean_vs_probe,
    })
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
        let p = &self.photons_per_pattern;
        let unit = if self.counts_calibrated {
            format!("counts = (s·X)², s = {:.6e}", self.intensity_scale)
        } else {
            "intensity scale unknown: X² taken as counts".to_string()
        };
        writeln!(
            f,
            "photons / pattern  mean {:.4e}, min {:.4e}, max {:.4e} ({unit})",
            p.mean, p.min, p.max
        )?;
        let [i, r, c] = self.max_count_at;
        writeln!(
            f,
            "max count          {} (pattern {i}, pixel [{r}, {c}]); {} value(s) equal it",
            fmt_count(self.max_count),
            self.values_at_max
        )?;
        let s = &self.saturation;
        match s.threshold_counts {
            Some(t) => writeln!(
                f,
                "saturated          {} value(s) ≥ {} in {} pattern(s), {} detector pixel(s) ({})",
                s.values,
                fmt_count(t),
                s.patterns,
                s.detector_pixels,
                s.rule
            )?,
            None => writeln!(f, "saturated          0 ({})", s.rule)?,
        }
        if s.pile_up_at_max {
            writeln!(
                f,
                "                   warning: {} values pile up at the maximum: a ceiling? (give --saturation)",
                self.values_at_max
            )?;
        }
        let listed = self
            .zero_pixels_listed
            .iter()
            .map(|[r, c]| format!("[{r}, {c}]"))
            .collect::<Vec<_>>()
            .join(" ");
        let more = if self.zero_pixels > self.zero_pixels_listed.len() {
            " …"
        } else {
            ""
        };
        writeln!(
            f,
            "dead pixels        {} zero in every pattern{}{listed}{more}; {} dead (lit neighbours: masked)",
            self.zero_pixels,
            if self.zero_pixels > 0 { ": " } else { "" },
            self.dead_pixels
        )?;
        let fractions = self
            .probe_power_fractions
            .iter()
            .map(|v| format!("{v:.4}"))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            f,
            "probe modes        {} (power fractions {fractions}; Σ|P|² = {:.4e})",
            self.n_probe_modes, self.probe_power
        )?;
        let m = &self.mean_vs_probe;
        writeln!(
            f,
            "mean vs probe FF   correlation {} (log {}; zero frequency at the corner instead: {}); \
             mean counts / Σ|P|² = {:.4}",
            opt(m.correlation),
            opt(m.log_correlation),
            opt(m.correlation_unshifted),
            m.counts_over_probe_power
        )
    }
}

/// Whole counts without decimals, others in scientific notation.
fn fmt_count(v: f64) -> String {
    if (v - v.round()).abs() < 1e-3 * v.abs().max(1.0) && v.abs() < 1e15 {
        format!("{:.0}", v.round())
    } else {
        format!("{v:.4e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_of_a_line_is_one_and_of_a_constant_none() {
        let a: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, 2.0 * i as f64 + 1.0)).collect();
        assert!((pearson(&a).unwrap() - 1.0).abs() < 1e-12);
        let flat: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, 3.0)).collect();
        assert_eq!(pearson(&flat), None);
    }

    #[test]
    fn counts_are_shown_whole_when_whole() {
        assert_eq!(fmt_count(963.0000001), "963");
        assert_eq!(fmt_count(0.25), "2.5000e-1");
    }
}
