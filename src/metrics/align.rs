//! Alignment steps before metrics: region crops, sub-pixel registration
//! (upsampled cross-correlation), Fourier shifts, phase offsets and planes.
use std::f64::consts::PI;

use ndarray::{Array2, ArrayView2, s};
use num_complex::{Complex32, Complex64};
use serde::{Deserialize, Serialize};

use super::basic::check_pair;
use super::fft::{fft2, fftfreq};
use crate::error::{Error, Result};

/// A rectangle of the object, pixels, half-open: rows `y0..y1`, columns `x0..x1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRegion {
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
}

impl ScanRegion {
    /// The whole of an `[H, W]` image.
    pub fn full(shape: [usize; 2]) -> Self {
        ScanRegion {
            y0: 0,
            y1: shape[0],
            x0: 0,
            x1: shape[1],
        }
    }

    /// The bounding box of the scan positions, widened by `half_width_px`
    /// (the half width of what a position contributes; PtychoPINN stitches
    /// the central M = 20 pixels, so 10) and by `margin_px`, rounded outwards
    /// (`floor` below, `ceil` above) and clipped to the image.
    ///
    /// # Shapes
    /// `positions_px`: `[n, 2]`, columns `(x, y)` in object pixels (as in
    /// `Dataset` and stitching); `shape`: the object's `[H, W]`.
    pub fn from_positions(
        positions_px: ArrayView2<'_, f64>,
        half_width_px: f64,
        margin_px: f64,
        shape: [usize; 2],
    ) -> Result<Self> {
        if positions_px.ncols() != 2 || positions_px.nrows() == 0 {
            return Err(Error::shape(
                "scan positions",
                "[n ≥ 1, 2] (x, y)",
                format!("{:?}", positions_px.shape()),
            ));
        }
        super::basic::check_finite("scan positions", positions_px)?;
        if !(half_width_px.is_finite() && half_width_px >= 0.0) {
            return Err(Error::config(
                "half_width_px",
                format!("must be finite and ≥ 0, got {half_width_px}"),
            ));
        }
        if !(margin_px.is_finite() && margin_px >= 0.0) {
            return Err(Error::config(
                "margin_px",
                format!("must be finite and ≥ 0, got {margin_px}"),
            ));
        }
        let extent = |col: usize, len: usize| {
            let c = positions_px.column(col);
            let lo = c.fold(f64::INFINITY, |m, &v| m.min(v)) - half_width_px - margin_px;
            let hi = c.fold(f64::NEG_INFINITY, |m, &v| m.max(v)) + half_width_px + margin_px;
            let lo = lo.floor().clamp(0.0, len as f64) as usize;
            let hi = hi.ceil().clamp(0.0, len as f64) as usize;
            (lo, hi)
        };
        let (x0, x1) = extent(0, shape[1]);
        let (y0, y1) = extent(1, shape[0]);
        let region = ScanRegion { y0, y1, x0, x1 };
        if y0 >= y1 || x0 >= x1 {
            return Err(Error::value(
                "scan region",
                format!(
                    "{region} is empty: the positions lie outside the {}×{} object",
                    shape[0], shape[1]
                ),
            ));
        }
        Ok(region)
    }

    /// The bounding box of the `true` pixels of a mask (e.g. where a
    /// reconstruction's coverage is high enough); an error naming `what`
    /// when none is.
    pub fn from_mask(mask: ArrayView2<'_, bool>, what: &str) -> Result<Self> {
        let (mut y0, mut y1, mut x0, mut x1) = (usize::MAX, 0, usize::MAX, 0);
        for ((y, x), &m) in mask.indexed_iter() {
            if m {
                y0 = y0.min(y);
                y1 = y1.max(y + 1);
                x0 = x0.min(x);
                x1 = x1.max(x + 1);
            }
        }
        if y0 == usize::MAX {
            return Err(Error::value(what, "is empty: no pixel is kept"));
        }
        Ok(ScanRegion { y0, y1, x0, x1 })
    }

    /// `[y1 − y0, x1 − x0]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.y1.saturating_sub(self.y0), self.x1.saturating_sub(self.x0)]
    }

    /// Checks that the region is non-empty and inside an `[H, W]` image.
    pub fn validate(&self, shape: [usize; 2]) -> Result<()> {
        if self.y0 >= self.y1 || self.x0 >= self.x1 || self.y1 > shape[0] || self.x1 > shape[1] {
            return Err(Error::config(
                "region",
                format!(
                    "{self} must be non-empty and inside the {}×{} image",
                    shape[0], shape[1]
                ),
            ));
        }
        Ok(())
    }

    /// The region of `a` (an owned copy).
    pub fn crop<T: Clone>(&self, a: ArrayView2<'_, T>) -> Result<Array2<T>> {
        self.validate([a.nrows(), a.ncols()])?;
        Ok(a.slice(s![self.y0..self.y1, self.x0..self.x1]).to_owned())
    }
}

impl std::fmt::Display for ScanRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "y {}..{}, x {}..{}", self.y0, self.y1, self.x0, self.x1)
    }
}

/// `a` without `px` pixels on every side.
pub fn crop_border<T: Clone>(a: ArrayView2<'_, T>, px: usize) -> Result<Array2<T>> {
    let (h, w) = a.dim();
    if 2 * px >= h || 2 * px >= w {
        return Err(Error::shape(
            "image to crop",
            format!("both sides > {} (a {px}-px border on each side)", 2 * px),
            format!("{h}×{w}"),
        ));
    }
    Ok(a.slice(s![px..h - px, px..w - px]).to_owned())
}

/// The translation `[dy, dx]` (pixels) that registers `moving` onto
/// `reference`, i.e. `fourier_shift(moving, shift) ≈ reference`, to within
/// `1/upsample_factor` px: scikit-image `phase_cross_correlation(reference,
/// moving, upsample_factor=u, normalization="phase")`. The cross-power
/// spectrum `F_ref·F_mov*` is normalised to unit modulus (floor
/// `100·ε_f64`); its inverse FFT gives the whole-pixel peak (shifts beyond
/// half the size wrap to negative); then a matrix-multiply DFT samples the
/// correlation on a `⌈1.5u⌉`-point grid of spacing `1/u` px centred on that
/// peak and the maximum there refines it. A side of length 1 gives 0.
pub fn register_translation(
    reference: ArrayView2<'_, f64>,
    moving: ArrayView2<'_, f64>,
    upsample_factor: u32,
) -> Result<[f64; 2]> {
    check_pair(reference, moving)?;
    let to_c = |a: ArrayView2<'_, f64>| a.mapv(|v| Complex64::new(v, 0.0));
    register_spectra(to_c(reference), to_c(moving), upsample_factor, CrossPower::Whitened)
}

/// How the cross-power spectrum `F_ref·F_mov*` is weighted before its
/// inverse transform (scikit-image's `normalization`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrossPower {
    /// Unit modulus at every frequency (phase correlation, `"phase"`, the
    /// default of scikit-image and of [`register_translation`]): a sharp
    /// peak, but frequencies where noise dominates weigh as much as the rest.
    Whitened,
    /// As it is (plain cross-correlation, `None`): each frequency weighs by
    /// its cross-power, so noise-dominated frequencies hardly count.
    Plain,
}

/// [`register_translation`] of complex images (scikit-image accepts
/// complex input the same way), with the cross-power weighting `weighting`:
/// the cross-power spectrum of the complex values, so a global phase factor
/// between the images does not move the peak. Checks that both are finite.
pub fn register_translation_complex(
    reference: ArrayView2<'_, Complex64>,
    moving: ArrayView2<'_, Complex64>,
    upsample_factor: u32,
    weighting: CrossPower,
) -> Result<[f64; 2]> {
    let parts = |a: ArrayView2<'_, Complex64>| (a.mapv(|v| v.re), a.mapv(|v| v.im));
    let ((rr, ri), (mr, mi)) = (parts(reference), parts(moving));
    check_pair(rr.view(), mr.view())?;
    check_pair(ri.view(), mi.view())?;
    register_spectra(reference.to_owned(), moving.to_owned(), upsample_factor, weighting)
}

fn register_spectra(
    mut src: Array2<Complex64>,
    mut tgt: Array2<Complex64>,
    upsample_factor: u32,
    weighting: CrossPower,
) -> Result<[f64; 2]> {
    if upsample_factor == 0 {
        return Err(Error::config("upsample_factor", "must be ≥ 1, got 0"));
    }
    let (h, w) = src.dim();
    fft2(&mut src, false);
    fft2(&mut tgt, false);
    let floor = 100.0 * f64::EPSILON;
    let product: Array2<Complex64> = ndarray::Zip::from(&src).and(&tgt).map_collect(|a, b| {
        let p = a * b.conj();
        match weighting {
            CrossPower::Whitened => p / p.norm().max(floor),
            CrossPower::Plain => p,
        }
    });
    let mut cc = product.clone();
    fft2(&mut cc, true);
    let (pi, pj) = argmax_abs(&cc);
    let wrap = |k: usize, n: usize| if k > n / 2 { k as f64 - n as f64 } else { k as f64 };
    let mut shift = [wrap(pi, h), wrap(pj, w)];
    if upsample_factor > 1 {
        let u = upsample_factor as f64;
        let size = (u * 1.5).ceil() as usize;
        let centre = (size / 2) as f64;
        let offsets = [centre - shift[0] * u, centre - shift[1] * u];
        let up = upsampled_dft(&product.mapv(|v| v.conj()), size, u, offsets);
        let (ui, uj) = argmax_abs(&up);
        shift[0] += (ui as f64 - centre) / u;
        shift[1] += (uj as f64 - centre) / u;
    }
    if h == 1 {
        shift[0] = 0.0;
    }
    if w == 1 {
        shift[1] = 0.0;
    }
    Ok(shift)
}

/// Index of the first largest modulus (C order, like numpy `argmax`).
fn argmax_abs(a: &Array2<Complex64>) -> (usize, usize) {
    let mut best = ((0, 0), f64::NEG_INFINITY);
    for (idx, v) in a.indexed_iter() {
        let m = v.norm();
        if m > best.1 {
            best = (idx, m);
        }
    }
    best.0
}

/// `out[u, v] = Σ_{h,w} data[h, w]·e^{−2πi((u − oy)·fy_h + (v − ox)·fx_w)/up}`
/// for `u, v < size`, with `f = fftfreq(n)` (scikit-image `_upsampled_dft`).
fn upsampled_dft(data: &Array2<Complex64>, size: usize, up: f64, offsets: [f64; 2]) -> Array2<Complex64> {
    let (h, w) = data.dim();
    let kernel = |n: usize, off: f64| -> Array2<Complex64> {
        let f = fftfreq(n);
        Array2::from_shape_fn((size, n), |(u, k)| {
            Complex64::from_polar(1.0, -2.0 * PI * (u as f64 - off) * f[k] / up)
        })
    };
    let ky = kernel(h, offsets[0]);
    let kx = kernel(w, offsets[1]);
    // [h, w] · kxᵀ [w, size] → [h, size]; then ky [size, h] · that → [size, size]
    let t = data.dot(&kx.t());
    ky.dot(&t)
}

/// Translates a complex image by `shift_px = [dy, dx]` with a Fourier
/// shift: `out = IFFT2(FFT2(a)·e^{−2πi(dy·ky + dx·kx)})`, `k = fftfreq`, so
/// `out(y, x) = a(y − dy, x − dx)` (periodic; crop the wrapped border
/// afterwards). Computed in f64.
pub fn fourier_shift(a: ArrayView2<'_, Complex32>, shift_px: [f64; 2]) -> Array2<Complex32> {
    let (h, w) = a.dim();
    let mut f = a.mapv(|v| Complex64::new(v.re as f64, v.im as f64));
    fft2(&mut f, false);
    let (fy, fx) = (fftfreq(h), fftfreq(w));
    for ((i, j), v) in f.indexed_iter_mut() {
        *v *= Complex64::from_polar(1.0, -2.0 * PI * (shift_px[0] * fy[i] + shift_px[1] * fx[j]));
    }
    fft2(&mut f, true);
    f.mapv(|v| Complex32::new(v.re as f32, v.im as f32))
}

/// A phase plane `φ(y, x) = slope_x·x + slope_y·y + offset`, with `x` the
/// column and `y` the row index of the image it was fitted to (origin at its
/// top-left pixel).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PhasePlane {
    pub slope_x_rad_per_px: f64,
    pub slope_y_rad_per_px: f64,
    pub offset_rad: f64,
}

impl PhasePlane {
    /// The plane's value at row `y`, column `x`.
    pub fn at(&self, y: usize, x: usize) -> f64 {
        self.slope_x_rad_per_px * x as f64 + self.slope_y_rad_per_px * y as f64 + self.offset_rad
    }

    /// `phase − plane`.
    pub fn subtract_from(&self, phase: ArrayView2<'_, f64>) -> Array2<f64> {
        Array2::from_shape_fn(phase.dim(), |(y, x)| phase[[y, x]] - self.at(y, x))
    }
}

/// Least-squares plane through every pixel of a phase image (radians, as
/// given: no unwrapping). On a full grid the centred coordinates are
/// orthogonal, so the normal equations solve in closed form; a side of
/// length 1 gives a zero slope along it.
pub fn fit_plane(phase: ArrayView2<'_, f64>) -> Result<PhasePlane> {
    if phase.is_empty() {
        return Err(Error::shape(
            "phase image",
            "non-empty [H, W]",
            format!("{:?}", phase.shape()),
        ));
    }
    super::basic::check_finite("phase image", phase)?;
    let (h, w) = phase.dim();
    let (my, mx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    let (mut sx, mut sy, mut sxx, mut syy, mut sum) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for ((y, x), &p) in phase.indexed_iter() {
        let (dy, dx) = (y as f64 - my, x as f64 - mx);
        sx += dx * p;
        sy += dy * p;
        sxx += dx * dx;
        syy += dy * dy;
        sum += p;
    }
    let a = if sxx > 0.0 { sx / sxx } else { 0.0 };
    let b = if syy > 0.0 { sy / syy } else { 0.0 };
    let mean = sum / phase.len() as f64;
    Ok(PhasePlane {
        slope_x_rad_per_px: a,
        slope_y_rad_per_px: b,
        offset_rad: mean - a * mx - b * my,
    })
}

/// Least-squares plane through the pixels of `phase` where `mask` is true
/// (normal equations in centred coordinates, solved in closed form; a
/// direction the kept pixels do not span gets a zero slope). The same as
/// [`fit_plane`] when every pixel is kept.
pub fn fit_plane_masked(phase: ArrayView2<'_, f64>, mask: ArrayView2<'_, bool>) -> Result<PhasePlane> {
    if mask.dim() != phase.dim() {
        return Err(Error::shape(
            "phase mask",
            format!("{:?} (the phase image's shape)", phase.shape()),
            format!("{:?}", mask.shape()),
        ));
    }
    let kept: Vec<(f64, f64, f64)> = phase
        .indexed_iter()
        .filter(|(idx, _)| mask[*idx])
        .map(|((y, x), &p)| (x as f64, y as f64, p))
        .collect();
    if kept.is_empty() {
        return Err(Error::value("phase mask", "keeps no pixel: no plane to fit"));
    }
    super::basic::check_finite("phase image", phase)?;
    let n = kept.len() as f64;
    let (mx, my, mp) = kept
        .iter()
        .fold((0.0, 0.0, 0.0), |(a, b, c), (x, y, p)| (a + x, b + y, c + p));
    let (mx, my, mp) = (mx / n, my / n, mp / n);
    let (mut sxx, mut syy, mut sxy, mut sxp, mut syp) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (x, y, p) in &kept {
        let (dx, dy, dp) = (x - mx, y - my, p - mp);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
        sxp += dx * dp;
        syp += dy * dp;
    }
    let det = sxx * syy - sxy * sxy;
    let (a, b) = if det > 1e-9 * (sxx * syy).max(1e-300) {
        ((sxp * syy - syp * sxy) / det, (syp * sxx - sxp * sxy) / det)
    } else if sxx > 0.0 {
        (sxp / sxx, 0.0)
    } else if syy > 0.0 {
        (0.0, syp / syy)
    } else {
        (0.0, 0.0)
    };
    Ok(PhasePlane {
        slope_x_rad_per_px: a,
        slope_y_rad_per_px: b,
        offset_rad: mp - a * mx - b * my,
    })
}

/// [`phase_offset`] over the pixels where `mask` is true.
pub fn phase_offset_masked(
    truth: ArrayView2<'_, Complex32>,
    pred: ArrayView2<'_, Complex32>,
    mask: ArrayView2<'_, bool>,
) -> Result<f64> {
    if truth.dim() != pred.dim() || mask.dim() != truth.dim() {
        return Err(Error::shape(
            "predicted object and mask",
            format!("{:?} (the truth's shape)", truth.shape()),
            format!("{:?} and {:?}", pred.shape(), mask.shape()),
        ));
    }
    let c: Complex64 =
        ndarray::Zip::from(truth)
            .and(pred)
            .and(mask)
            .fold(Complex64::new(0.0, 0.0), |acc, t, p, &keep| {
                if keep {
                    acc + Complex64::new(t.re as f64, t.im as f64) * Complex64::new(p.re as f64, -p.im as f64)
                } else {
                    acc
                }
            });
    Ok(if c.norm() > 0.0 { c.arg() } else { 0.0 })
}

/// The global phase (radians) that best maps `pred` onto `truth`:
/// `θ = arg Σ truth·conj(pred)`, so `pred·e^{iθ}` minimises
/// `Σ|truth − pred·e^{iθ}|²` (amplitude-weighted, no wrapping problems).
/// 0 when the sum vanishes.
pub fn phase_offset(truth: ArrayView2<'_, Complex32>, pred: ArrayView2<'_, Complex32>) -> Result<f64> {
    if truth.dim() != pred.dim() {
        return Err(Error::shape(
            "predicted object",
            format!("{:?} (the truth's shape)", truth.shape()),
            format!("{:?}", pred.shape()),
        ));
    }
    let c: Complex64 = truth
        .iter()
        .zip(pred.iter())
        .map(|(t, p)| Complex64::new(t.re as f64, t.im as f64) * Complex64::new(p.re as f64, -p.im as f64))
        .sum();
    Ok(if c.norm() > 0.0 { c.arg() } else { 0.0 })
}
