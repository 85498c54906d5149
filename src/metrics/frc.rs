//! Fourier ring correlation of two real images.
//!
//! Both images are centre-cropped to an `N × N` square (`N = min(H, W)`, the
//! crop starting at `((H−N)/2, (W−N)/2)`, integer division), transformed
//! (FFT2, centred as numpy `fftshift`, so the zero frequency sits at
//! `(N/2, N/2)`), and pixels are grouped in rings by their rounded distance
//! from that centre, `r = round(√(dy² + dx²))`, for `r = 0 … N/2` (corners
//! beyond N/2 are left out). Per ring
//! `FRC(r) = |Σ F1·F2*| / √(Σ|F1|² · Σ|F2|²)`, NaN where either image has no
//! power in the ring. No window and no smoothing of the curve (PtychoPINN's
//! `frc_sigma = 0`). Spatial frequency: `r / N` cycles per pixel.
//! [`frc_complex`] does the same for complex images (every pixel of a ring
//! is an independent sample, no Friedel symmetry); [`half_bit_threshold`]
//! is van Heel & Schatz's (2005) information threshold for a ring of
//! `n_r` pixels, and [`FrcCurve::crossing_of`] the crossing of a curve of
//! thresholds (the half-set FRC of [`super::half_set`]).
use ndarray::{Array2, ArrayView2, s};
use num_complex::Complex64;
use serde::Serialize;

use super::basic::check_pair;
use super::fft::fft2;
use crate::error::{Error, Result};

/// An FRC curve: one entry per ring `0 … N/2`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrcCurve {
    /// Ring index (= radius in frequency pixels), as f64 for tables.
    pub ring: Vec<f64>,
    /// `ring / N`, cycles per pixel (0 … 0.5).
    pub cycles_per_px: Vec<f64>,
    /// The correlation per ring (NaN where a ring has no power).
    pub frc: Vec<f64>,
    /// `N`, the side of the square the FRC was computed on, pixels.
    pub size_px: usize,
    /// Pixels of the `N × N` spectrum in each ring (the `n_r` of
    /// [`half_bit_threshold`]).
    pub n_pixels: Vec<usize>,
}

/// The threshold of FRC50.
pub const FRC_HALF: f64 = 0.5;
/// The 1/7 threshold.
pub const FRC_ONE_SEVENTH: f64 = 1.0 / 7.0;

/// The half-bit threshold of a ring of `n_pixels` pixels (van Heel & Schatz
/// 2005, eq. 17 with `n = n_r`):
/// `T(r) = (0.2071 + 1.9102/√n_r) / (1.2071 + 0.9102/√n_r)`: the FRC two
/// images from half the data each reach when their sum holds half a bit of
/// information per pixel in the ring. 1 for a ring of one pixel (ring 0),
/// falling to 0.2071/1.2071 ≈ 0.172 as rings grow. NaN for an empty ring.
pub fn half_bit_threshold(n_pixels: usize) -> f64 {
    if n_pixels == 0 {
        return f64::NAN;
    }
    let s = (n_pixels as f64).sqrt();
    (0.2071 + 1.9102 / s) / (1.2071 + 0.9102 / s)
}

impl FrcCurve {
    /// The mean FRC over the rings with `lo ≤ cycles/px < hi` (`hi` = 0.5
    /// includes Nyquist's ring), NaN rings left out; NaN when none is left.
    /// A curve that crosses no threshold is summarised by such band means.
    pub fn band_mean(&self, lo: f64, hi: f64) -> f64 {
        let (sum, count) = self
            .cycles_per_px
            .iter()
            .zip(&self.frc)
            .filter(|&(&f, v)| f >= lo && (f < hi || (hi >= 0.5 && f <= hi)) && !v.is_nan())
            .fold((0.0, 0usize), |(s, c), (_, &v)| (s + v, c + 1));
        if count == 0 { f64::NAN } else { sum / count as f64 }
    }

    /// The first crossing below `threshold`, in ring units: for the first
    /// ring `i` with `FRC(i) < threshold`, linear interpolation between ring
    /// `i−1` (≥ threshold) and ring `i`,
    /// `(i−1) + (FRC(i−1) − t) / (FRC(i−1) − FRC(i))`; `0` when ring 0 is
    /// already below; `i` when ring `i−1` is NaN. NaN rings never count as
    /// below. `None` when the curve never drops below the threshold (tables
    /// show that as null, not as the last ring).
    pub fn crossing(&self, threshold: f64) -> Option<f64> {
        let i = self.frc.iter().position(|&v| v < threshold)?;
        if i == 0 {
            return Some(0.0);
        }
        let (prev, cur) = (self.frc[i - 1], self.frc[i]);
        if !prev.is_finite() {
            return Some(i as f64);
        }
        Some((i - 1) as f64 + (prev - threshold) / (prev - cur))
    }

    /// [`crossing`](Self::crossing) in cycles per pixel (`ring / N`).
    pub fn crossing_cycles_per_px(&self, threshold: f64) -> Option<f64> {
        self.crossing(threshold).map(|r| r / self.size_px as f64)
    }

    /// The half-bit threshold of every ring ([`half_bit_threshold`] of
    /// [`n_pixels`](Self::n_pixels)).
    pub fn half_bit(&self) -> Vec<f64> {
        self.n_pixels.iter().map(|&n| half_bit_threshold(n)).collect()
    }

    /// The first crossing below a threshold curve (`thresholds[r]` per
    /// ring), searched from ring `from_ring` on, in ring units: for the
    /// first ring `i ≥ from_ring` with `FRC(i) < T(i)`, linear interpolation
    /// of `d = FRC − T` between ring `i−1` and ring `i`,
    /// `(i−1) + d(i−1) / (d(i−1) − d(i))`; `i` when ring `i−1` is NaN or
    /// already below its threshold (it was before `from_ring`), `0` when
    /// `i = 0`. NaN rings never count as below. `None` when the curve never
    /// drops below. With a constant curve and `from_ring = 0` this is
    /// [`crossing`](Self::crossing).
    pub fn crossing_of(&self, thresholds: &[f64], from_ring: usize) -> Option<f64> {
        let d: Vec<f64> = self.frc.iter().zip(thresholds).map(|(&v, &t)| v - t).collect();
        let i = (from_ring..d.len()).find(|&i| d[i] < 0.0)?;
        if i == 0 {
            return Some(0.0);
        }
        let (prev, cur) = (d[i - 1], d[i]);
        if !(prev.is_finite() && prev >= 0.0) {
            return Some(i as f64);
        }
        Some((i - 1) as f64 + prev / (prev - cur))
    }
}

/// The FRC of two real images of the same shape (see the module docs).
pub fn frc(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Result<FrcCurve> {
    check_pair(a, b)?;
    let to_c = |img: ArrayView2<'_, f64>| img.mapv(|v| Complex64::new(v, 0.0));
    frc_centred(to_c(a), to_c(b))
}

/// The FRC of two complex images of the same shape: as [`frc`] (centre
/// crop to a square, centred FFT, rounded-radius rings), on the complex
/// values. Checks that both are finite.
pub fn frc_complex(a: ArrayView2<'_, Complex64>, b: ArrayView2<'_, Complex64>) -> Result<FrcCurve> {
    let parts = |img: ArrayView2<'_, Complex64>| (img.mapv(|v| v.re), img.mapv(|v| v.im));
    let ((ar, ai), (br, bi)) = (parts(a), parts(b));
    check_pair(ar.view(), br.view())?;
    check_pair(ai.view(), bi.view())?;
    frc_centred(a.to_owned(), b.to_owned())
}

fn frc_centred(a: Array2<Complex64>, b: Array2<Complex64>) -> Result<FrcCurve> {
    let (h, w) = a.dim();
    let n = h.min(w);
    if n < 2 {
        return Err(Error::shape("FRC image", "both sides ≥ 2", format!("{h}×{w}")));
    }
    let (y0, x0) = ((h - n) / 2, (w - n) / 2);
    let spectrum = |img: Array2<Complex64>| {
        let mut f = img.slice(s![y0..y0 + n, x0..x0 + n]).to_owned();
        fft2(&mut f, false);
        f
    };
    let (f1, f2) = (spectrum(a), spectrum(b));
    let rings = n / 2 + 1;
    let mut cross = vec![Complex64::new(0.0, 0.0); rings];
    let mut p1 = vec![0.0; rings];
    let mut p2 = vec![0.0; rings];
    let mut n_pixels = vec![0usize; rings];
    // unshifted index k has centred offset ((k + N/2) mod N) − N/2
    let offset = |k: usize| ((k + n / 2) % n) as f64 - (n / 2) as f64;
    for ((i, j), v1) in f1.indexed_iter() {
        let r = offset(i).hypot(offset(j)).round() as usize;
        if r < rings {
            let v2 = f2[[i, j]];
            cross[r] += v1 * v2.conj();
            p1[r] += v1.norm_sqr();
            p2[r] += v2.norm_sqr();
            n_pixels[r] += 1;
        }
    }
    let frc = (0..rings)
        .map(|r| {
            let den = (p1[r] * p2[r]).sqrt();
            if den > 0.0 { cross[r].norm() / den } else { f64::NAN }
        })
        .collect();
    Ok(FrcCurve {
        ring: (0..rings).map(|r| r as f64).collect(),
        cycles_per_px: (0..rings).map(|r| r as f64 / n as f64).collect(),
        frc,
        size_px: n,
        n_pixels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(frc: Vec<f64>) -> FrcCurve {
        let n = 2 * (frc.len() - 1);
        FrcCurve {
            ring: (0..frc.len()).map(|r| r as f64).collect(),
            cycles_per_px: (0..frc.len()).map(|r| r as f64 / n as f64).collect(),
            frc,
            size_px: n,
            n_pixels: vec![1; n / 2 + 1],
        }
    }

    #[test]
    fn band_means_by_hand() {
        // rings 0..4 of an 8-px square: 0, 0.125, 0.25, 0.375, 0.5 cycles/px
        let c = curve(vec![f64::NAN, 0.9, 0.7, 0.5, 0.1]);
        assert!((c.band_mean(0.1, 0.25) - 0.9).abs() < 1e-12);
        assert!((c.band_mean(0.25, 0.5) - (0.7 + 0.5 + 0.1) / 3.0).abs() < 1e-12);
        assert!((c.band_mean(0.0, 0.2) - 0.9).abs() < 1e-12, "the NaN ring is left out");
        assert!(
            (c.band_mean(0.25, 0.4) - 0.6).abs() < 1e-12,
            "below 0.5 the upper edge is open"
        );
        assert!(c.band_mean(0.13, 0.2).is_nan());
    }

    #[test]
    fn crossing_interpolates_between_rings() {
        let c = curve(vec![1.0, 0.9, 0.6, 0.4, 0.1]);
        assert!((c.crossing(0.5).unwrap() - 2.5).abs() < 1e-12);
        assert!((c.crossing(0.1 + 1e-9).unwrap() - 4.0).abs() < 1e-6);
        assert_eq!(c.crossing(0.05), None);
        assert!((c.crossing_cycles_per_px(0.5).unwrap() - 2.5 / 8.0).abs() < 1e-12);
        assert_eq!(curve(vec![0.2, 0.1]).crossing(0.5), Some(0.0));
    }

    #[test]
    fn crossing_of_a_constant_curve_is_crossing() {
        let c = curve(vec![1.0, 0.9, 0.6, 0.4, 0.1]);
        for t in [0.5, 0.3, 0.05, 0.95] {
            assert_eq!(c.crossing_of(&[t; 5], 0), c.crossing(t), "threshold {t}");
        }
    }

    #[test]
    fn crossing_of_follows_the_threshold_curve() {
        // d = FRC − T: 0, 0.4, 0.2, −0.2 → crossing at 2.5
        let c = curve(vec![1.0, 0.9, 0.6, 0.3, 0.1]);
        let t = [1.0, 0.5, 0.4, 0.5, 0.5];
        assert!((c.crossing_of(&t, 1).unwrap() - 2.5).abs() < 1e-12);
        // ring 0 below its threshold is skipped from ring 1; ring 1 below → 1
        let c = curve(vec![0.9, 0.2, 0.1]);
        assert_eq!(c.crossing_of(&[1.0, 0.5, 0.5], 1), Some(1.0));
        assert_eq!(c.crossing_of(&[1.0, 0.5, 0.5], 0), Some(0.0));
        assert_eq!(curve(vec![f64::NAN, 1.0, 1.0]).crossing_of(&[0.5; 3], 1), None);
    }

    #[test]
    fn half_bit_threshold_values() {
        assert!((half_bit_threshold(1) - 1.0).abs() < 1e-12);
        // n = 100: (0.2071 + 0.19102) / (1.2071 + 0.09102)
        assert!((half_bit_threshold(100) - 0.39812 / 1.29812).abs() < 1e-12);
        assert!((half_bit_threshold(usize::MAX) - 0.2071 / 1.2071).abs() < 1e-6);
        assert!(half_bit_threshold(0).is_nan());
    }

    #[test]
    fn complex_frc_of_a_real_pair_is_the_real_frc() {
        let a = Array2::from_shape_fn((12, 10), |(i, j)| ((i * 7 + j * 3) % 5) as f64 + 0.1 * i as f64);
        let b = Array2::from_shape_fn((12, 10), |(i, j)| ((i * 2 + j * 5) % 7) as f64 - 0.2 * j as f64);
        let c = |x: &Array2<f64>| x.mapv(|v| Complex64::new(v, 0.0));
        let want = frc(a.view(), b.view()).unwrap();
        let got = frc_complex(c(&a).view(), c(&b).view()).unwrap();
        assert_eq!(got.n_pixels, want.n_pixels);
        for (g, w) in got.frc.iter().zip(&want.frc) {
            assert!((g - w).abs() < 1e-12);
        }
        assert_eq!(want.n_pixels.iter().sum::<usize>(), 87); // 100 less the corners beyond ring 5 (numpy)
    }
}
