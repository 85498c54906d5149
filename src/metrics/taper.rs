//! The edge taper of a region of any outline, for FFTs of masked images
//! (the half-set FRC, [`super::half_set`]): a cosine profile over the
//! Euclidean distance to the region's outline, so a rectangle gets a Tukey
//! window and a disc or a raster scan's rounded corners the same profile.
use std::f64::consts::PI;

use ndarray::{Array2, ArrayView2, s};

/// The edge taper of a region: `w = sin²(π/2 · min(d / L, 1))` inside the
/// mask, 0 outside, with `d` the Euclidean distance (px) from a pixel to the
/// nearest pixel outside the mask (pixels beyond the image count as
/// outside; so `d ≥ 1` inside) and `L = taper_px`. Pixels `L` or more from
/// the outline keep weight 1.
pub fn edge_taper(mask: ArrayView2<'_, bool>, taper_px: f64) -> Array2<f64> {
    let d2 = squared_distance_to_outside(mask);
    d2.mapv(|d2| {
        let t = (d2.sqrt() / taper_px).min(1.0);
        (0.5 * PI * t).sin().powi(2)
    })
}

/// Squared Euclidean distance from every pixel to the nearest `false` pixel
/// (0 on `false` pixels), with a ring of `false` around the image: the
/// separable exact transform of Felzenszwalb & Huttenlocher (2012), rows
/// then columns.
pub(crate) fn squared_distance_to_outside(mask: ArrayView2<'_, bool>) -> Array2<f64> {
    let (h, w) = mask.dim();
    // padded by one false pixel on every side
    let (ph, pw) = (h + 2, w + 2);
    const FAR: f64 = 1e20;
    let mut g = Array2::from_elem((ph, pw), 0.0);
    for ((y, x), &m) in mask.indexed_iter() {
        if m {
            g[[y + 1, x + 1]] = FAR;
        }
    }
    let mut f = vec![0.0; ph.max(pw)];
    let mut out = vec![0.0; ph.max(pw)];
    for mut row in g.rows_mut() {
        f[..pw].iter_mut().zip(row.iter()).for_each(|(d, s)| *d = *s);
        distance_1d(&f[..pw], &mut out[..pw]);
        row.iter_mut().zip(&out[..pw]).for_each(|(d, s)| *d = *s);
    }
    for mut col in g.columns_mut() {
        f[..ph].iter_mut().zip(col.iter()).for_each(|(d, s)| *d = *s);
        distance_1d(&f[..ph], &mut out[..ph]);
        col.iter_mut().zip(&out[..ph]).for_each(|(d, s)| *d = *s);
    }
    g.slice(s![1..h + 1, 1..w + 1]).to_owned()
}

/// `out[q] = min_p (q − p)² + f[p]`: the lower envelope of parabolas.
fn distance_1d(f: &[f64], out: &mut [f64]) {
    let n = f.len();
    if n == 0 {
        return;
    }
    let mut v = vec![0usize; n];
    let mut z = vec![0.0f64; n + 1];
    let mut k = 0usize;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    // the parabola from `q` meets the one from `v[k]` at `s`
    let meet = |q: usize, p: usize| {
        let (qf, pf) = (q as f64, p as f64);
        ((f[q] + qf * qf) - (f[p] + pf * pf)) / (2.0 * (qf - pf))
    };
    for q in 1..n {
        let mut s = meet(q, v[k]);
        // z[0] = −∞ stops this at k = 0
        while s <= z[k] {
            k -= 1;
            s = meet(q, v[k]);
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f64::INFINITY;
    }
    let mut k = 0usize;
    for (q, o) in out.iter_mut().enumerate() {
        let qf = q as f64;
        while z[k + 1] < qf {
            k += 1;
        }
        let p = v[k] as f64;
        *o = (qf - p) * (qf - p) + f[v[k]];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_transform_is_exact_on_small_masks() {
        let mask = Array2::from_shape_fn((9, 11), |(y, x)| !(y == 4 && x == 6) && (x + y) % 13 != 0);
        let d2 = squared_distance_to_outside(mask.view());
        for ((y, x), &got) in d2.indexed_iter() {
            // brute force over the padded grid
            let mut best = f64::INFINITY;
            for py in -1..=9i64 {
                for px in -1..=11i64 {
                    let inside = py >= 0 && px >= 0 && py < 9 && px < 11 && mask[[py as usize, px as usize]];
                    if !inside {
                        let d = (py - y as i64).pow(2) + (px - x as i64).pow(2);
                        best = best.min(d as f64);
                    }
                }
            }
            assert_eq!(got, best, "pixel ({y}, {x})");
        }
    }

    #[test]
    fn taper_of_a_rectangle_is_one_inside_and_small_at_the_edge() {
        let mask = Array2::from_elem((20, 30), true);
        let w = edge_taper(mask.view(), 4.0);
        assert_eq!(w[[10, 15]], 1.0);
        assert!((w[[0, 15]] - (PI / 8.0).sin().powi(2)).abs() < 1e-12);
        assert!((w[[3, 15]] - 1.0).abs() < 1e-12);
    }
}
