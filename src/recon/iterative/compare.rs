//! The object error the iterative solvers are judged by.
use ndarray::{Array2, s};
use num_complex::{Complex32, Complex64};

use crate::error::{Error, Result};

/// Relative error of `reconstruction` against `truth` in the scanned region,
/// modulo a global complex factor.
///
/// Both are cropped to the positions' bounding box widened by `N/4` on each
/// side (clipped to the grid); then with `c = <R, T>/<R, R>` (the factor that
/// best maps `R` onto `T`) the error is `‖c·R − T‖ / ‖T‖`. Sums in f64.
pub fn object_error(
    reconstruction: &Array2<Complex32>,
    truth: &Array2<Complex32>,
    positions_px: &Array2<f64>,
    n: usize,
) -> Result<f64> {
    if reconstruction.shape() != truth.shape() {
        return Err(Error::shape(
            "reconstruction",
            format!("{:?} (the truth's shape)", truth.shape()),
            format!("{:?}", reconstruction.shape()),
        ));
    }
    if positions_px.ncols() != 2 || positions_px.nrows() == 0 {
        return Err(Error::shape(
            "positions",
            "[n, 2], n ≥ 1",
            format!("{:?}", positions_px.shape()),
        ));
    }
    let (h, w) = (truth.nrows() as f64, truth.ncols() as f64);
    let margin = n as f64 / 4.0;
    let range = |col: usize, side: f64| -> (usize, usize) {
        let c = positions_px.column(col);
        let lo = c.iter().cloned().fold(f64::INFINITY, f64::min) - margin;
        let hi = c.iter().cloned().fold(f64::NEG_INFINITY, f64::max) + margin;
        let lo = lo.floor().clamp(0.0, side - 1.0) as usize;
        let hi = hi.ceil().clamp(0.0, side - 1.0) as usize;
        (lo, hi.max(lo))
    };
    let (x0, x1) = range(0, w);
    let (y0, y1) = range(1, h);
    let r = reconstruction.slice(s![y0..=y1, x0..=x1]);
    let t = truth.slice(s![y0..=y1, x0..=x1]);
    let (mut rt, mut rr, mut tt) = (Complex64::new(0.0, 0.0), 0f64, 0f64);
    for (a, b) in r.iter().zip(t.iter()) {
        let (a, b) = (
            Complex64::new(a.re as f64, a.im as f64),
            Complex64::new(b.re as f64, b.im as f64),
        );
        rt += a.conj() * b;
        rr += a.norm_sqr();
        tt += b.norm_sqr();
    }
    if tt == 0.0 {
        return Err(Error::value("truth", "is zero in the scanned region"));
    }
    let c = if rr > 0.0 { rt / rr } else { Complex64::new(0.0, 0.0) };
    let residual: f64 = r
        .iter()
        .zip(t.iter())
        .map(|(a, b)| {
            (c * Complex64::new(a.re as f64, a.im as f64) - Complex64::new(b.re as f64, b.im as f64)).norm_sqr()
        })
        .sum();
    Ok((residual / tt).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_global_complex_factor_costs_nothing_and_the_region_is_the_scan() {
        let truth = Array2::from_shape_fn((20, 20), |(i, j)| Complex32::new(1.0 + i as f32, j as f32 * 0.1));
        let pos = ndarray::array![[8.0, 8.0], [11.0, 11.0]];
        let c = Complex32::from_polar(0.5, 1.2);
        let mut rec = truth.mapv(|v| v * c);
        assert!(object_error(&rec, &truth, &pos, 8).unwrap() < 1e-6);
        // outside the box 6..=13 nothing counts
        rec[[0, 0]] = Complex32::new(100.0, 0.0);
        assert!(object_error(&rec, &truth, &pos, 8).unwrap() < 1e-6);
        rec[[6, 6]] += Complex32::new(1.0, 0.0);
        assert!(object_error(&rec, &truth, &pos, 8).unwrap() > 1e-3);
    }
}
