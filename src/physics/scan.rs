//! Scan patterns, in object pixels (DESIGN §3). Every position keeps its
//! `N×N` patch (bilinear neighbours included) inside an `[H, W]` object:
//! `x ∈ [N/2 + buffer, W − N/2 − 1 − buffer]`, likewise for y.
use rand::Rng;

use crate::error::{Error, Result};

/// The allowed range of one coordinate for an object side `side`, patch `n`.
pub fn valid_range(side: i64, n: i64, buffer_px: f64) -> Result<(f64, f64)> {
    let lo = (n / 2) as f64 + buffer_px;
    let hi = (side - n / 2 - 1) as f64 - buffer_px;
    if !(buffer_px.is_finite() && buffer_px >= 0.0) || hi < lo {
        return Err(Error::config(
            "object_size_px",
            format!(
                "an object side of {side} px leaves no room for {n}×{n} patches \
                 with a buffer of {buffer_px} px"
            ),
        ));
    }
    Ok((lo, hi))
}

fn grid_axis(lo: f64, hi: f64, spacing: f64) -> Vec<f64> {
    let count = ((hi - lo) / spacing).floor() as usize + 1;
    // whole-pixel margin, so integer spacing gives integer positions
    let start = lo + (((hi - lo) - (count - 1) as f64 * spacing) / 2.0).floor();
    (0..count).map(|i| start + i as f64 * spacing).collect()
}

/// A raster (row by row) with `spacing_px`, centred in the valid region, each
/// point moved by a uniform jitter in `[−jitter_px, jitter_px]` (clamped to
/// the region). Integer spacing and zero jitter give integer positions
/// (exact patch extraction).
pub fn raster<R: Rng>(h: i64, w: i64, n: i64, spacing_px: f64, jitter_px: f64, rng: &mut R) -> Result<Vec<[f64; 2]>> {
    if !(spacing_px > 0.0 && spacing_px.is_finite()) {
        return Err(Error::config(
            "scan.spacing_px",
            format!("must be positive, got {spacing_px}"),
        ));
    }
    if !(jitter_px >= 0.0 && jitter_px.is_finite()) {
        return Err(Error::config("scan.jitter_px", format!("must be ≥ 0, got {jitter_px}")));
    }
    let (xlo, xhi) = valid_range(w, n, 0.0)?;
    let (ylo, yhi) = valid_range(h, n, 0.0)?;
    let xs = grid_axis(xlo, xhi, spacing_px);
    let ys = grid_axis(ylo, yhi, spacing_px);
    let mut out = Vec::with_capacity(xs.len() * ys.len());
    for &y in &ys {
        for &x in &xs {
            let (mut px, mut py) = (x, y);
            if jitter_px > 0.0 {
                px = (px + rng.random_range(-jitter_px..=jitter_px)).clamp(xlo, xhi);
                py = (py + rng.random_range(-jitter_px..=jitter_px)).clamp(ylo, yhi);
            }
            out.push([px, py]);
        }
    }
    Ok(out)
}

/// A Fermat spiral around the object centre: `r_k = c·√k`, `θ_k = k·137.508°`,
/// with `c = spacing_px/√π` so each point covers `spacing_px²` on average (as a
/// square raster of that spacing). Points outside the valid region are
/// skipped; `count` points are returned or an error says they do not fit.
pub fn fermat_spiral(h: i64, w: i64, n: i64, count: usize, spacing_px: f64) -> Result<Vec<[f64; 2]>> {
    if !(spacing_px > 0.0 && spacing_px.is_finite()) {
        return Err(Error::config(
            "scan.spacing_px",
            format!("must be positive, got {spacing_px}"),
        ));
    }
    let (xlo, xhi) = valid_range(w, n, 0.0)?;
    let (ylo, yhi) = valid_range(h, n, 0.0)?;
    let (cx, cy) = ((xlo + xhi) / 2.0, (ylo + yhi) / 2.0);
    let c = spacing_px / std::f64::consts::PI.sqrt();
    let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
    // beyond this radius no point can be inside the region
    let r_max = ((xhi - xlo).powi(2) + (yhi - ylo).powi(2)).sqrt() / 2.0;
    let k_max = ((r_max / c).powi(2)).ceil() as usize + 1;
    let mut out = Vec::with_capacity(count);
    for k in 0..k_max {
        if out.len() == count {
            break;
        }
        let r = c * (k as f64).sqrt();
        let t = k as f64 * golden;
        let (x, y) = (cx + r * t.cos(), cy + r * t.sin());
        if (xlo..=xhi).contains(&x) && (ylo..=yhi).contains(&y) {
            out.push([x, y]);
        }
    }
    if out.len() < count {
        return Err(Error::config(
            "scan.n_images",
            format!(
                "only {} spiral points with spacing {spacing_px} px fit in a {h}×{w} object, {count} requested",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// `count` positions drawn uniformly in the valid region shrunk by `buffer_px`.
pub fn uniform_random<R: Rng>(
    h: i64,
    w: i64,
    n: i64,
    count: usize,
    buffer_px: f64,
    rng: &mut R,
) -> Result<Vec<[f64; 2]>> {
    let (xlo, xhi) = valid_range(w, n, buffer_px)?;
    let (ylo, yhi) = valid_range(h, n, buffer_px)?;
    Ok((0..count)
        .map(|_| [rng.random_range(xlo..=xhi), rng.random_range(ylo..=yhi)])
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn raster_is_centred_and_inside() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let p = raster(128, 128, 64, 8.0, 0.0, &mut rng).unwrap();
        // valid x in [32, 95]: 63/8 → 8 points, start 32 + floor((63 − 56)/2) = 35
        assert_eq!(p.len(), 64);
        assert_eq!(p[0], [35.0, 35.0]);
        assert_eq!(p[1], [43.0, 35.0]);
        assert_eq!(p[63], [91.0, 91.0]);
    }

    #[test]
    fn spiral_points_have_the_requested_density() {
        let p = fermat_spiral(512, 512, 64, 400, 10.0).unwrap();
        assert_eq!(p.len(), 400);
        // 400 points at 100 px² each cover a disk of area 40 000 px²: radius ≈ 112.8
        let (cx, cy) = (255.5, 255.5);
        let rmax = p
            .iter()
            .map(|q| ((q[0] - cx).powi(2) + (q[1] - cy).powi(2)).sqrt())
            .fold(0.0, f64::max);
        assert!((rmax - 112.8).abs() < 3.0, "{rmax}");
        assert!(fermat_spiral(128, 128, 64, 10_000, 10.0).is_err());
    }

    #[test]
    fn random_positions_respect_the_buffer() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let p = uniform_random(100, 200, 32, 1000, 5.0, &mut rng).unwrap();
        assert!(
            p.iter()
                .all(|q| q[0] >= 21.0 && q[0] <= 178.0 && q[1] >= 21.0 && q[1] <= 78.0)
        );
        assert!(p.iter().any(|q| q[0] > 170.0) && p.iter().any(|q| q[1] < 25.0));
        assert!(uniform_random(40, 40, 32, 1, 5.0, &mut rng).is_err());
    }
}
