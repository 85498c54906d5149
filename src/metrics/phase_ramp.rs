//! The relative phase of two reconstructions of one object: a global offset
//! and a linear ramp of `arg(a·conj(b))` over a region, without unwrapping
//! (the half-set FRC's step 3, [`super::half_set`]).
use std::f64::consts::PI;

use ndarray::{Array2, ArrayView2, s};
use num_complex::Complex64;

use super::align::ScanRegion;
use super::fft::{fft2, fftfreq};

/// The phase of `a·conj(b)` as a plane over the full grid.
pub(crate) struct RelativePhase {
    pub(crate) offset_rad: f64,
    pub(crate) ramp_rad_per_px: [f64; 2],
}

impl RelativePhase {
    pub(crate) fn at(&self, y: usize, x: usize) -> f64 {
        self.offset_rad + self.ramp_rad_per_px[0] * y as f64 + self.ramp_rad_per_px[1] * x as f64
    }
}

/// The offset and ramp of `c = arg(a·conj(b))` over `mask` (`region` its
/// bounding box): the ramp first to the nearest bin of a 2×-padded FFT of
/// `c` (ramps of several cycles across the field, found without
/// unwrapping), then an amplitude-weighted least-squares plane through the
/// remaining phase (within ±π/4 across the field after the coarse step);
/// the offset `arg Σ c·e^{−i·ramp}`. `b·e^{i·plane}` then agrees with `a` in
/// phase.
pub(crate) fn relative_phase(
    a: ArrayView2<'_, Complex64>,
    b: ArrayView2<'_, Complex64>,
    mask: ArrayView2<'_, bool>,
    region: ScanRegion,
) -> RelativePhase {
    let [h, w] = region.shape();
    // c in the region's frame (y, x from its corner), 0 off the mask
    let c = Array2::from_shape_fn((h, w), |(y, x)| {
        let (gy, gx) = (y + region.y0, x + region.x0);
        if mask[[gy, gx]] {
            a[[gy, gx]] * b[[gy, gx]].conj()
        } else {
            Complex64::new(0.0, 0.0)
        }
    });
    // coarse: the peak of a 2×-padded spectrum (FFT sign: c = e^{2πi k·x} peaks at k)
    let mut padded = Array2::zeros((2 * h, 2 * w));
    padded.slice_mut(s![..h, ..w]).assign(&c);
    fft2(&mut padded, false);
    let (mut best, mut peak) = ((0, 0), f64::NEG_INFINITY);
    for (idx, v) in padded.indexed_iter() {
        if v.norm() > peak {
            (best, peak) = (idx, v.norm());
        }
    }
    let (fy, fx) = (fftfreq(2 * h), fftfreq(2 * w));
    let mut ramp = [2.0 * PI * fy[best.0], 2.0 * PI * fx[best.1]];
    let derotate = |ramp: [f64; 2]| {
        Array2::from_shape_fn((h, w), |(y, x)| {
            c[[y, x]] * Complex64::from_polar(1.0, -(ramp[0] * y as f64 + ramp[1] * x as f64))
        })
    };
    // fine: weighted least-squares plane through the residual phase, centred
    let c1 = derotate(ramp);
    let theta0 = c1.sum().arg();
    let rot = Complex64::from_polar(1.0, -theta0);
    let (mut sw, mut sy, mut sx, mut sp) = (0.0, 0.0, 0.0, 0.0);
    let pts: Vec<(f64, f64, f64, f64)> = c1
        .indexed_iter()
        .filter(|(_, v)| v.norm() > 0.0)
        .map(|((y, x), v)| {
            let v = v * rot;
            (y as f64, x as f64, v.arg(), v.norm())
        })
        .collect();
    for &(y, x, p, wt) in &pts {
        sw += wt;
        sy += wt * y;
        sx += wt * x;
        sp += wt * p;
    }
    if sw > 0.0 {
        let (my, mx, mp) = (sy / sw, sx / sw, sp / sw);
        let (mut syy, mut sxx, mut sxy, mut syp, mut sxp) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(y, x, p, wt) in &pts {
            let (dy, dx, dp) = (y - my, x - mx, p - mp);
            syy += wt * dy * dy;
            sxx += wt * dx * dx;
            sxy += wt * dx * dy;
            syp += wt * dy * dp;
            sxp += wt * dx * dp;
        }
        let det = syy * sxx - sxy * sxy;
        if det > 1e-9 * (syy * sxx).max(1e-300) {
            ramp[0] += (syp * sxx - sxp * sxy) / det;
            ramp[1] += (sxp * syy - syp * sxy) / det;
        }
    }
    let theta = derotate(ramp).sum().arg();
    // from the region's frame to the full grid's
    let offset = theta - ramp[0] * region.y0 as f64 - ramp[1] * region.x0 as f64;
    RelativePhase {
        offset_rad: wrap(offset),
        ramp_rad_per_px: ramp,
    }
}

/// An angle in (−π, π].
fn wrap(a: f64) -> f64 {
    let r = a.rem_euclid(2.0 * PI);
    if r > PI { r - 2.0 * PI } else { r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_phase_recovers_a_wrapping_ramp() {
        let (h, w) = (40, 48);
        let a = Array2::from_shape_fn((h, w), |(y, x)| {
            Complex64::from_polar(1.0 + 0.3 * ((x * 7 + y * 3) % 5) as f64, 0.4 * ((x * y) % 7) as f64)
        });
        let (oy, ox, off) = (-0.11, 0.23, 2.9);
        let b = Array2::from_shape_fn((h, w), |(y, x)| {
            a[[y, x]] * Complex64::from_polar(1.0, -(off + oy * y as f64 + ox * x as f64))
        });
        let mask = Array2::from_elem((h, w), true);
        let region = ScanRegion::full([h, w]);
        let p = relative_phase(a.view(), b.view(), mask.view(), region);
        assert!((p.ramp_rad_per_px[0] - oy).abs() < 1e-9, "{:?}", p.ramp_rad_per_px);
        assert!((p.ramp_rad_per_px[1] - ox).abs() < 1e-9, "{:?}", p.ramp_rad_per_px);
        assert!((p.offset_rad - off).abs() < 1e-9, "{}", p.offset_rad);
    }
}
