//! Which object pixels a scan illuminated: the pixels a comparison can
//! honestly score when positions are sparse (what no measurement saw is
//! not a reconstruction's fault).
use ndarray::{Array2, ArrayView2};
use num_complex::Complex32;

use crate::error::{Error, Result};

/// Share of the probe's energy `Σ|P|²` inside its support (see
/// [`probe_support`]): the brightest pixels that together hold 90 % of it.
pub const SUPPORT_ENERGY_FRACTION: f64 = 0.9;

/// The probe's support: the smallest set of its brightest pixels whose
/// `|P|²` sums to at least `energy_fraction` of the total (ties at the
/// threshold all kept).
///
/// # Shapes
/// `probe`: `[N, N]` → `[N, N]`
pub fn probe_support(probe: ArrayView2<'_, Complex32>, energy_fraction: f64) -> Result<Array2<bool>> {
    if !(energy_fraction > 0.0 && energy_fraction <= 1.0) {
        return Err(Error::config(
            "energy_fraction",
            format!("must be in (0, 1], got {energy_fraction}"),
        ));
    }
    let power = probe.mapv(|v| v.norm_sqr() as f64);
    if power.iter().any(|v| !v.is_finite()) {
        return Err(Error::value("probe", "contains NaN or infinite values"));
    }
    let total: f64 = power.sum();
    if total <= 0.0 {
        return Err(Error::value("probe", "is zero everywhere: it illuminates nothing"));
    }
    let mut sorted: Vec<f64> = power.iter().copied().collect();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mut acc = 0.0;
    let mut threshold = sorted[0];
    for v in sorted {
        acc += v;
        threshold = v;
        if acc >= energy_fraction * total {
            break;
        }
    }
    Ok(power.mapv(|v| v >= threshold && v > 0.0))
}

/// The object pixels inside the probe's support (`support`, `[N, N]`) at
/// any scan position, on an `[H, W]` grid: position `(x, y)` rounded to
/// whole pixels puts support pixel `(i, j)` at object pixel
/// `(y − N/2 + i, x − N/2 + j)` (docs/physics.md); what falls outside the
/// grid is dropped.
///
/// # Shapes
/// `support`: `[N, N]`; `positions_px`: `[n, 2]` columns `(x, y)` → `[H, W]`
pub fn illuminated(
    support: ArrayView2<'_, bool>,
    positions_px: ArrayView2<'_, f64>,
    shape: [usize; 2],
) -> Result<Array2<bool>> {
    Ok(illumination_counts(support, positions_px, shape)?.mapv(|c| c > 0))
}

/// How many positions' supports cover each pixel of an `[H, W]` grid
/// (placed as in [`illuminated`]).
///
/// # Shapes
/// `support`: `[N, N]`; `positions_px`: `[n, 2]` columns `(x, y)` → `[H, W]`
pub fn illumination_counts(
    support: ArrayView2<'_, bool>,
    positions_px: ArrayView2<'_, f64>,
    shape: [usize; 2],
) -> Result<Array2<u32>> {
    let (n, m) = support.dim();
    if n != m || n == 0 {
        return Err(Error::shape(
            "probe support",
            "[N, N]",
            format!("{:?}", support.shape()),
        ));
    }
    if positions_px.ncols() != 2 {
        return Err(Error::shape(
            "scan positions",
            "[n, 2] (x, y)",
            format!("{:?}", positions_px.shape()),
        ));
    }
    let offsets: Vec<(i64, i64)> = support
        .indexed_iter()
        .filter(|(_, k)| **k)
        .map(|((i, j), _)| (i as i64 - (n / 2) as i64, j as i64 - (n / 2) as i64))
        .collect();
    let (h, w) = (shape[0] as i64, shape[1] as i64);
    let mut counts = Array2::<u32>::zeros((shape[0], shape[1]));
    for row in positions_px.rows() {
        let (x, y) = (row[0], row[1]);
        if !(x.is_finite() && y.is_finite()) {
            return Err(Error::value(
                "scan positions",
                format!("contain a non-finite position ({x}, {y})"),
            ));
        }
        let (cx, cy) = (x.round() as i64, y.round() as i64);
        for &(di, dj) in &offsets {
            let (r, c) = (cy + di, cx + dj);
            if (0..h).contains(&r) && (0..w).contains(&c) {
                counts[[r as usize, c as usize]] += 1;
            }
        }
    }
    Ok(counts)
}

/// The mean of [`illumination_counts`] over the pixels it covers: how many
/// patterns measure a typical illuminated pixel (about 1 for a scan without
/// overlap, tens for a dense one). 0 when nothing is covered.
pub fn redundancy(support: ArrayView2<'_, bool>, positions_px: ArrayView2<'_, f64>, shape: [usize; 2]) -> Result<f64> {
    let counts = illumination_counts(support, positions_px, shape)?;
    let (sum, covered) = counts
        .iter()
        .filter(|&&c| c > 0)
        .fold((0u64, 0u64), |(s, k), &c| (s + c as u64, k + 1));
    Ok(if covered == 0 { 0.0 } else { sum as f64 / covered as f64 })
}

/// [`illuminated`] with [`probe_support`] at [`SUPPORT_ENERGY_FRACTION`]:
/// the pixels a comparison scores when it scores only what was measured.
pub fn illuminated_mask(
    probe: ArrayView2<'_, Complex32>,
    positions_px: ArrayView2<'_, f64>,
    shape: [usize; 2],
) -> Result<Array2<bool>> {
    illuminated(
        probe_support(probe, SUPPORT_ENERGY_FRACTION)?.view(),
        positions_px,
        shape,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_keeps_the_brightest_pixels_holding_the_fraction() {
        // powers 9, 4, 1, 0 (+ zeros): 90 % of 14 = 12.6 needs 9 + 4 (13)
        let mut p = Array2::from_elem((4, 4), Complex32::new(0.0, 0.0));
        p[[0, 0]] = Complex32::new(3.0, 0.0);
        p[[1, 1]] = Complex32::new(0.0, 2.0);
        p[[2, 2]] = Complex32::new(1.0, 0.0);
        let s = probe_support(p.view(), 0.9).unwrap();
        assert_eq!(s.iter().filter(|&&k| k).count(), 2);
        assert!(s[[0, 0]] && s[[1, 1]] && !s[[2, 2]]);
        // everything non-zero at 100 %
        assert_eq!(probe_support(p.view(), 1.0).unwrap().iter().filter(|&&k| k).count(), 3);
        assert!(probe_support(p.view(), 0.0).is_err());
        assert!(probe_support(Array2::zeros((4, 4)).view(), 0.9).is_err());
    }

    #[test]
    fn illuminated_places_the_support_by_the_patch_convention() {
        // N = 4: support pixel (i, j) lands at (y − 2 + i, x − 2 + j)
        let mut support = Array2::from_elem((4, 4), false);
        support[[2, 2]] = true; // the patch centre
        support[[0, 3]] = true;
        let pos = ndarray::array![[5.0, 3.0], [0.4, 0.0]];
        let m = illuminated(support.view(), pos.view(), [8, 8]).unwrap();
        assert!(m[[3, 5]]); // centre of (5, 3)
        assert!(m[[1, 6]]); // (3 − 2 + 0, 5 − 2 + 3)
        assert!(m[[0, 0]]); // centre of (0.4 → 0, 0)
        // (0 − 2 + 0, 0 − 2 + 3) is off the grid: dropped, not wrapped
        assert_eq!(m.iter().filter(|&&k| k).count(), 3);
        assert!(illuminated(support.view(), ndarray::array![[f64::NAN, 0.0]].view(), [8, 8]).is_err());
        // counts and redundancy: (5, 3) twice and (0.4, 0) once
        let pos = ndarray::array![[5.0, 3.0], [5.0, 3.0], [0.4, 0.0]];
        let c = illumination_counts(support.view(), pos.view(), [8, 8]).unwrap();
        assert_eq!((c[[3, 5]], c[[1, 6]], c[[0, 0]]), (2, 2, 1));
        assert!((redundancy(support.view(), pos.view(), [8, 8]).unwrap() - 5.0 / 3.0).abs() < 1e-12);
    }
}
