//! SSIM exactly as scikit-image `structural_similarity(a, b, data_range=R,
//! gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`, and a
//! multi-scale SSIM built on it.
//!
//! SSIM: local means, variances and covariance come from a Gaussian filter
//! (σ = 1.5, truncated at 3.5σ → radius 5, an 11-tap window; scipy
//! `gaussian_filter`, mode `reflect` = half-sample symmetric), applied
//! separably (rows, then columns). The SSIM map
//! `(2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))`,
//! `C1 = (0.01 R)²`, `C2 = (0.03 R)²`, is averaged after dropping a 5-pixel
//! strip on every side. Images must be at least 11×11.
use ndarray::ArrayView2;

use super::basic::{check_pair, check_range};
use crate::error::{Error, Result};

/// Gaussian σ of the SSIM window, pixels.
pub const SSIM_SIGMA_PX: f64 = 1.5;
/// The window is truncated at this many σ (scikit-image's value).
pub const SSIM_TRUNCATE: f64 = 3.5;
/// The window width, `2·int(3.5·1.5 + 0.5) + 1`, pixels; the smallest image side SSIM accepts.
pub const SSIM_WINDOW_PX: usize = 11;
const K1: f64 = 0.01;
const K2: f64 = 0.03;
/// MS-SSIM level weights, finest first (Wang, Simoncelli & Bovik 2003).
pub const MS_SSIM_WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];
/// Per-level SSIM values below this are clamped to it before the weighted product.
pub const MS_SSIM_FLOOR: f64 = 1e-4;

const RADIUS: usize = SSIM_WINDOW_PX / 2;

/// Mean SSIM of `pred` against `truth` with data range `R` (see the module docs).
///
/// # Shapes
/// `truth`, `pred`: `[H, W]`, both sides ≥ 11.
pub fn ssim(truth: ArrayView2<'_, f64>, pred: ArrayView2<'_, f64>, data_range: f64) -> Result<f64> {
    let img = Pair::new(truth, pred, data_range)?;
    Ok(ssim_flat(&img.a, &img.b, img.h, img.w, data_range, None))
}

/// [`ssim`] on the pixels where `mask` is true: local statistics from
/// those pixels only (normalised Gaussian windows, `μx = G(m·x) / G(m)`),
/// the SSIM map averaged over them (outside the 5-px border). With every
/// pixel kept it equals [`ssim`]. An error when no scored pixel is inside
/// the border.
///
/// # Shapes
/// `truth`, `pred`, `mask`: `[H, W]`, both sides ≥ 11.
pub fn ssim_masked(
    truth: ArrayView2<'_, f64>,
    pred: ArrayView2<'_, f64>,
    data_range: f64,
    mask: ArrayView2<'_, bool>,
) -> Result<f64> {
    let img = Pair::new(truth, pred, data_range)?;
    let m = flat_mask(mask, img.h, img.w)?;
    Ok(ssim_flat(&img.a, &img.b, img.h, img.w, data_range, Some(&m)))
}

/// `mask` as a flat buffer, checked against `[h, w]` and for at least one
/// scored pixel inside the SSIM border.
fn flat_mask(mask: ArrayView2<'_, bool>, h: usize, w: usize) -> Result<Vec<bool>> {
    if mask.dim() != (h, w) {
        return Err(Error::shape(
            "metric mask",
            format!("[{h}, {w}] (the images' shape)"),
            format!("{:?}", mask.shape()),
        ));
    }
    let inside = (RADIUS..h - RADIUS).any(|i| (RADIUS..w - RADIUS).any(|j| mask[[i, j]]));
    if !inside {
        return Err(Error::value(
            "metric mask",
            format!("keeps no pixel more than {RADIUS} px from the image's edge (the SSIM border)"),
        ));
    }
    Ok(mask.iter().copied().collect())
}

/// Multi-scale SSIM, the convention of PtychoPINN's evaluation:
/// level 1 is the full-resolution SSIM (as [`ssim`]); each next level
/// decimates both images by `[::2, ::2]` (no low-pass; sides become
/// `⌈H/2⌉ × ⌈W/2⌉`) and takes the full SSIM again, with the same `R`. Levels
/// stop after 5, or before one whose smaller side would be under the 11-px
/// window (PtychoPINN stops under 7 px, the size of scikit-image's default
/// uniform window; ours is the 11-px Gaussian one). With `s_j` the level
/// values clamped below at 1e-4 and `w_j` [`MS_SSIM_WEIGHTS`] of the levels
/// computed, the result is `Π s_j^(w_j / Σ w_j)`: the weights are
/// renormalised so that a 64-px image (3 levels) still gives 1 for
/// identical images and a value on the SSIM scale otherwise.
pub fn ms_ssim(truth: ArrayView2<'_, f64>, pred: ArrayView2<'_, f64>, data_range: f64) -> Result<f64> {
    let levels = ms_ssim_levels(truth, pred, data_range)?;
    Ok(combine_levels(&levels))
}

/// The per-level SSIM values of [`ms_ssim`] (finest first, before clamping).
pub fn ms_ssim_levels(truth: ArrayView2<'_, f64>, pred: ArrayView2<'_, f64>, data_range: f64) -> Result<Vec<f64>> {
    let img = Pair::new(truth, pred, data_range)?;
    Ok(levels_flat(img, data_range, None))
}

/// [`ms_ssim`] with every level's SSIM map averaged over `mask` (decimated
/// with the images, `[::2, ::2]`); levels stop early where the decimated
/// mask keeps no pixel inside the border.
pub fn ms_ssim_masked(
    truth: ArrayView2<'_, f64>,
    pred: ArrayView2<'_, f64>,
    data_range: f64,
    mask: ArrayView2<'_, bool>,
) -> Result<f64> {
    let img = Pair::new(truth, pred, data_range)?;
    let m = flat_mask(mask, img.h, img.w)?;
    Ok(combine_levels(&levels_flat(img, data_range, Some(m))))
}

fn levels_flat(img: Pair, data_range: f64, mut mask: Option<Vec<bool>>) -> Vec<f64> {
    let (mut a, mut b, mut h, mut w) = (img.a, img.b, img.h, img.w);
    let mut levels = Vec::with_capacity(MS_SSIM_WEIGHTS.len());
    loop {
        levels.push(ssim_flat(&a, &b, h, w, data_range, mask.as_deref()));
        let (nh, nw) = (h.div_ceil(2), w.div_ceil(2));
        if levels.len() == MS_SSIM_WEIGHTS.len() || nh.min(nw) < SSIM_WINDOW_PX {
            return levels;
        }
        a = decimate(&a, h, w);
        b = decimate(&b, h, w);
        if let Some(m) = &mask {
            let next = decimate(m, h, w);
            let scored = (RADIUS..nh - RADIUS).any(|i| (RADIUS..nw - RADIUS).any(|j| next[i * nw + j]));
            if !scored {
                return levels;
            }
            mask = Some(next);
        }
        (h, w) = (nh, nw);
    }
}

pub(crate) fn combine_levels(levels: &[f64]) -> f64 {
    let weights = &MS_SSIM_WEIGHTS[..levels.len()];
    let total: f64 = weights.iter().sum();
    levels
        .iter()
        .zip(weights)
        .map(|(s, w)| s.max(MS_SSIM_FLOOR).powf(w / total))
        .product()
}

/// Two validated images as flat row-major buffers.
struct Pair {
    a: Vec<f64>,
    b: Vec<f64>,
    h: usize,
    w: usize,
}

impl Pair {
    fn new(truth: ArrayView2<'_, f64>, pred: ArrayView2<'_, f64>, data_range: f64) -> Result<Self> {
        check_pair(truth, pred)?;
        check_range(data_range)?;
        let (h, w) = truth.dim();
        if h < SSIM_WINDOW_PX || w < SSIM_WINDOW_PX {
            return Err(Error::shape(
                "SSIM image",
                format!("at least {SSIM_WINDOW_PX}×{SSIM_WINDOW_PX} (the Gaussian window)"),
                format!("{h}×{w}"),
            ));
        }
        Ok(Pair {
            a: truth.iter().copied().collect(),
            b: pred.iter().copied().collect(),
            h,
            w,
        })
    }
}

fn decimate<T: Copy>(a: &[T], h: usize, w: usize) -> Vec<T> {
    (0..h)
        .step_by(2)
        .flat_map(|i| a[i * w..(i + 1) * w].iter().step_by(2).copied())
        .collect()
}

/// scipy `_gaussian_kernel1d(σ, 0, radius)`: `exp(−x²/2σ²)` normalised to sum 1.
fn gaussian_kernel() -> [f64; SSIM_WINDOW_PX] {
    let mut k = [0.0; SSIM_WINDOW_PX];
    for (i, v) in k.iter_mut().enumerate() {
        let x = i as f64 - RADIUS as f64;
        *v = (-0.5 / (SSIM_SIGMA_PX * SSIM_SIGMA_PX) * x * x).exp();
    }
    let s: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    k
}

/// scipy mode `reflect` (`d c b a | a b c d | d c b a`) for index `i` of `n`.
fn reflect(i: isize, n: usize) -> usize {
    let period = 2 * n as isize;
    let m = i.rem_euclid(period) as usize;
    if m >= n { 2 * n - 1 - m } else { m }
}

/// `gaussian_filter(src, 1.5, mode='reflect', truncate=3.5)` on an `[h, w]` buffer.
fn gaussian_filter(src: &[f64], h: usize, w: usize, k: &[f64; SSIM_WINDOW_PX]) -> Vec<f64> {
    // axis 0: each output row is a weighted sum of (reflected) input rows
    let mut tmp = vec![0.0; h * w];
    for i in 0..h {
        let out = &mut tmp[i * w..(i + 1) * w];
        for (t, kt) in k.iter().enumerate() {
            let r = reflect(i as isize + t as isize - RADIUS as isize, h);
            for (o, s) in out.iter_mut().zip(&src[r * w..(r + 1) * w]) {
                *o += kt * s;
            }
        }
    }
    // axis 1: each row padded by reflection, then an 11-tap correlation
    let mut dst = vec![0.0; h * w];
    let mut pad = vec![0.0; w + 2 * RADIUS];
    for i in 0..h {
        let row = &tmp[i * w..(i + 1) * w];
        for (j, p) in pad.iter_mut().enumerate() {
            *p = row[reflect(j as isize - RADIUS as isize, w)];
        }
        for (j, o) in dst[i * w..(i + 1) * w].iter_mut().enumerate() {
            *o = k.iter().zip(&pad[j..j + SSIM_WINDOW_PX]).map(|(a, b)| a * b).sum();
        }
    }
    dst
}

/// The mean of the SSIM map over the pixels outside the 5-px border (and,
/// with a mask, where it is true; the caller makes sure one is). With a
/// mask the local statistics are normalised convolutions over the scored
/// pixels only, `μx = G(m·x) / G(m)` and likewise for the second moments,
/// so a value outside the mask never enters a window.
fn ssim_flat(a: &[f64], b: &[f64], h: usize, w: usize, data_range: f64, mask: Option<&[bool]>) -> f64 {
    let k = gaussian_kernel();
    let weight: Vec<f64> = match mask {
        None => vec![1.0; a.len()],
        Some(m) => m.iter().map(|&keep| if keep { 1.0 } else { 0.0 }).collect(),
    };
    let prod = |f: &dyn Fn(f64, f64) -> f64| -> Vec<f64> {
        a.iter().zip(b).zip(&weight).map(|((x, y), m)| m * f(*x, *y)).collect()
    };
    let mut ux = gaussian_filter(&prod(&|x, _| x), h, w, &k);
    let mut uy = gaussian_filter(&prod(&|_, y| y), h, w, &k);
    let mut uxx = gaussian_filter(&prod(&|x, _| x * x), h, w, &k);
    let mut uyy = gaussian_filter(&prod(&|_, y| y * y), h, w, &k);
    let mut uxy = gaussian_filter(&prod(&|x, y| x * y), h, w, &k);
    if mask.is_some() {
        let norm = gaussian_filter(&weight, h, w, &k);
        for (p, &g) in norm.iter().enumerate() {
            if g > 0.0 {
                for u in [&mut ux, &mut uy, &mut uxx, &mut uyy, &mut uxy] {
                    u[p] /= g;
                }
            }
        }
    }
    let c1 = (K1 * data_range).powi(2);
    let c2 = (K2 * data_range).powi(2);
    let (mut sum, mut count) = (0.0, 0usize);
    for i in RADIUS..h - RADIUS {
        for j in RADIUS..w - RADIUS {
            let p = i * w + j;
            if mask.is_some_and(|m| !m[p]) {
                continue;
            }
            count += 1;
            let (mx, my) = (ux[p], uy[p]);
            let vx = uxx[p] - mx * mx;
            let vy = uyy[p] - my * my;
            let vxy = uxy[p] - mx * my;
            sum += (2.0 * mx * my + c1) * (2.0 * vxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2));
        }
    }
    sum / count as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_is_half_sample_symmetric() {
        let got: Vec<usize> = (-4..8).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0]);
    }

    #[test]
    fn filter_keeps_a_constant_and_the_sum_of_the_kernel_is_one() {
        let k = gaussian_kernel();
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        let out = gaussian_filter(&[2.5; 13 * 17], 13, 17, &k);
        assert!(out.iter().all(|v| (v - 2.5).abs() < 1e-12));
    }

    #[test]
    fn weights_renormalise_over_computed_levels() {
        assert!((combine_levels(&[1.0, 1.0, 1.0]) - 1.0).abs() < 1e-15);
        assert!((combine_levels(&[0.5; 5]) - 0.5).abs() < 1e-12);
        assert!((combine_levels(&[-0.3]) - MS_SSIM_FLOOR).abs() < 1e-15);
    }
}
