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
}

/// The threshold of FRC50.
pub const FRC_HALF: f64 = 0.5;
/// The 1/7 threshold.
pub const FRC_ONE_SEVENTH: f64 = 1.0 / 7.0;

impl FrcCurve {
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
}

/// The FRC of two real images of the same shape (see the module docs).
pub fn frc(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Result<FrcCurve> {
    check_pair(a, b)?;
    let (h, w) = a.dim();
    let n = h.min(w);
    if n < 2 {
        return Err(Error::shape("FRC image", "both sides ≥ 2", format!("{h}×{w}")));
    }
    let (y0, x0) = ((h - n) / 2, (w - n) / 2);
    let spectrum = |img: ArrayView2<'_, f64>| {
        let mut f: Array2<Complex64> = img.slice(s![y0..y0 + n, x0..x0 + n]).mapv(|v| Complex64::new(v, 0.0));
        fft2(&mut f, false);
        f
    };
    let (f1, f2) = (spectrum(a), spectrum(b));
    let rings = n / 2 + 1;
    let mut cross = vec![Complex64::new(0.0, 0.0); rings];
    let mut p1 = vec![0.0; rings];
    let mut p2 = vec![0.0; rings];
    // unshifted index k has centred offset ((k + N/2) mod N) − N/2
    let offset = |k: usize| ((k + n / 2) % n) as f64 - (n / 2) as f64;
    for ((i, j), v1) in f1.indexed_iter() {
        let r = offset(i).hypot(offset(j)).round() as usize;
        if r < rings {
            let v2 = f2[[i, j]];
            cross[r] += v1 * v2.conj();
            p1[r] += v1.norm_sqr();
            p2[r] += v2.norm_sqr();
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
        }
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
}
