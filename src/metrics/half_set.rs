//! Half-set FRC: the resolution of a measured scan without ground truth.
//!
//! Two reconstructions of two interleaved halves of the same scan
//! ([`crate::recon::halves`]) share the object and differ in their noise;
//! the spatial frequency where their Fourier ring correlation falls below a
//! threshold is the resolution the data support. [`half_set_frc`], in order:
//!
//! 1. **Region**: a pixel is compared where each half's coverage is at least
//!    `coverage_fraction` of that half's maximum (every pixel of a half
//!    without coverage).
//! 2. **Registration** (optional): `b` is shifted onto `a` by the upsampled
//!    cross-correlation ([`register_translation_complex`], 1/50 px, plain
//!    rather than whitened: half-set reconstructions are noise beyond their
//!    resolution, and phase correlation would weigh those frequencies as
//!    much as the rest) of their neighbour products `g(o) = (o(y, x+1) + o(y+1, x))·conj(o(y, x))`
//!    over the common region (mean removed, edge-tapered): a global phase
//!    factor cancels in `g`, and a linear phase ramp becomes one (for ramps
//!    well under a radian per pixel), so neither moves the peak, and `g`
//!    carries amplitude and phase-gradient contrast alike (a pure phase
//!    object registers). With the phase removal on, that shift is then
//!    refined on the objects themselves, after step 3 on the shifted `b`
//!    (a product carries about twice the noise of the objects). The shift
//!    is applied to `b` as a Fourier shift and to its coverage bilinearly
//!    before the region is taken again.
//! 3. **Phase**: a global offset and a linear ramp between the halves are
//!    removed from `b`: the ramp of `c = a·conj(b)` over the region, first
//!    to the nearest bin of a 2×-padded FFT of `c` (so ramps of several
//!    cycles across the field are found without unwrapping), then refined
//!    by an amplitude-weighted least-squares plane through the remaining
//!    phase (within ±π/4 across the field after the coarse step); the offset
//!    is `arg Σ c·e^{−i·ramp}` (`metrics/phase_ramp.rs`).
//! 4. **Apodisation** ([`apodised_frc`]): each image less its weighted
//!    mean, times a cosine edge taper that follows the region's outline,
//!    `w = sin²(π/2 · min(d / L, 1))` with `d` the Euclidean distance (px) to
//!    the nearest pixel outside the region (the image border counts as
//!    outside) and `L` the taper width ([`edge_taper`]): a Tukey window for
//!    a rectangle, and the same profile along any other outline. A hard mask edge would
//!    put the same sharp edge in both images, whose spectrum correlates at
//!    every frequency and lifts the FRC; the mean goes for the same reason
//!    (the window's own spectrum around zero frequency).
//! 5. **FRC**: the region's bounding box, zero-padded to a square of its
//!    longer side, then [`frc_complex`]. Ring 0 (the removed mean) is NaN,
//!    and crossings are searched from ring 1 on.
//!
//! The 1/7 threshold and the half-bit threshold (van Heel & Schatz 2005,
//! [`half_bit_threshold`](super::frc::half_bit_threshold)) are both reported; for two reconstructions from
//! half the data each the half-bit threshold is the appropriate one (the 1/7
//! threshold is meant for a half-set FSC/FRC extrapolated to the full data).
//! The resolution is `1 / f` at the crossing, linearly interpolated between
//! rings; a curve that never crosses is reported at Nyquist (2 px) and
//! flagged `crossed: false`.

use ndarray::{Array2, ArrayView2, Zip, s};
use num_complex::{Complex32, Complex64};
use serde::{Deserialize, Serialize};

use super::align::{CrossPower, ScanRegion, fourier_shift, register_translation_complex};
use super::frc::{FRC_ONE_SEVENTH, FrcCurve, frc_complex};
use super::phase_ramp::relative_phase;
use super::taper::edge_taper;
use crate::error::{Error, Result};

/// The choices of [`half_set_frc`]; recorded in [`HalfSetAlignment`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HalfSetConfig {
    /// A pixel is compared where each half's coverage is at least this
    /// fraction of that half's maximum, in (0, 1] (0.5: about the outermost
    /// positions' centres for a raster scan, where the coverage has fallen
    /// to half its plateau).
    pub coverage_fraction: f64,
    /// Width `L` of the edge taper, px; `None`: an eighth of the smaller side
    /// of the region's bounding box, at least 2 (a Tukey window with
    /// α = 0.25 on a rectangle).
    pub taper_px: Option<f64>,
    /// Registration precision `1/u` px; `None` leaves `b` where it is.
    pub upsample_factor: Option<u32>,
    /// A registration that finds a larger shift (either axis, px) is an
    /// error rather than applied: two halves of one scan sit on the same
    /// grid to within a drift of a few pixels, and a far peak means the
    /// halves hardly correlate (too little signal), not that they moved
    /// (8 px; `None`: any shift).
    pub max_shift_px: Option<f64>,
    /// Remove a global phase offset and a linear phase ramp from `b`.
    pub remove_phase_ramp: bool,
    /// The object's pixel size, m, for frequencies in nm⁻¹ and
    /// resolutions in nm.
    pub pixel_size_m: Option<f64>,
}

impl Default for HalfSetConfig {
    fn default() -> Self {
        HalfSetConfig {
            coverage_fraction: 0.5,
            taper_px: None,
            upsample_factor: Some(50),
            max_shift_px: Some(8.0),
            remove_phase_ramp: true,
            pixel_size_m: None,
        }
    }
}

impl HalfSetConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if !(self.coverage_fraction > 0.0 && self.coverage_fraction <= 1.0) {
            return Err(Error::config(
                "coverage_fraction",
                format!("must be in (0, 1], got {}", self.coverage_fraction),
            ));
        }
        if let Some(t) = self.taper_px
            && !(t.is_finite() && t > 0.0)
        {
            return Err(Error::config("taper_px", format!("must be finite and > 0, got {t}")));
        }
        if let Some(u) = self.upsample_factor
            && !(1..=10_000).contains(&u)
        {
            return Err(Error::config(
                "upsample_factor",
                format!("must be in 1..=10000, got {u}"),
            ));
        }
        if let Some(m) = self.max_shift_px
            && !(m.is_finite() && m >= 0.0)
        {
            return Err(Error::config(
                "max_shift_px",
                format!("must be finite and ≥ 0, got {m}"),
            ));
        }
        if let Some(p) = self.pixel_size_m
            && !(p.is_finite() && p > 0.0)
        {
            return Err(Error::config(
                "pixel_size_m",
                format!("must be finite and > 0, got {p}"),
            ));
        }
        Ok(())
    }
}

/// Where an FRC curve crosses one threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolution {
    /// `1/7` or `half-bit`.
    pub threshold: String,
    /// False when the curve stays above the threshold up to Nyquist; the
    /// numbers below are then Nyquist's (0.5 cycles/px, 2 px), a bound.
    pub crossed: bool,
    /// The crossing in ring units (interpolated); `None` when not crossed.
    pub crossing_ring: Option<f64>,
    pub frequency_cycles_per_px: f64,
    /// `1 / frequency`, px.
    pub resolution_px: f64,
    /// With a pixel size.
    pub frequency_per_nm: Option<f64>,
    pub resolution_nm: Option<f64>,
}

impl Resolution {
    fn new(threshold: &str, curve: &FrcCurve, crossing_ring: Option<f64>, pixel_size_m: Option<f64>) -> Self {
        let frequency_cycles_per_px = crossing_ring.map_or(0.5, |r| r / curve.size_px as f64);
        let resolution_px = 1.0 / frequency_cycles_per_px;
        let nm = pixel_size_m.map(|p| p * 1e9);
        Resolution {
            threshold: threshold.into(),
            crossed: crossing_ring.is_some(),
            crossing_ring,
            frequency_cycles_per_px,
            resolution_px,
            frequency_per_nm: nm.map(|p| frequency_cycles_per_px / p),
            resolution_nm: nm.map(|p| resolution_px * p),
        }
    }
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<9} {:.3} px ({:.4} cycles/px",
            self.threshold, self.resolution_px, self.frequency_cycles_per_px
        )?;
        if let (Some(nm), Some(fnm)) = (self.resolution_nm, self.frequency_per_nm) {
            write!(f, "; {nm:.3} nm, {fnm:.5} nm⁻¹")?;
        }
        write!(f, ")")?;
        if !self.crossed {
            write!(f, "  never crossed: Nyquist, a bound")?;
        }
        Ok(())
    }
}

/// What [`half_set_frc`] applied, with the resolved numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HalfSetAlignment {
    /// `[H, W]` of the reconstructions.
    pub input_shape: [usize; 2],
    /// `[dy, dx]` px applied to `b` (`out(y, x) = b(y − dy, x − dx)`); `None` without registration.
    pub shift_px: Option<[f64; 2]>,
    /// `b` was multiplied by `e^{i(offset + ramp_y·y + ramp_x·x)}`, `(y, x)`
    /// the full grid's row and column; `None` without phase removal.
    pub phase_offset_rad: Option<f64>,
    /// `[ramp_y, ramp_x]`, rad/px.
    pub phase_ramp_rad_per_px: Option<[f64; 2]>,
    pub coverage_fraction: f64,
    /// The bounding box of the compared pixels.
    pub region: ScanRegion,
    /// Pixels in the compared region.
    pub compared_pixels: usize,
    /// The taper width `L` used, px.
    pub taper_px: f64,
    /// The side of the square the FRC was computed on.
    pub fft_size_px: usize,
}

/// The result of [`half_set_frc`]. Owns its data (notebook friendly).
#[derive(Debug, Clone)]
pub struct HalfSetFrc {
    /// The FRC (ring 0 NaN), rings, cycles/px and pixels per ring.
    pub curve: FrcCurve,
    /// The half-bit threshold per ring.
    pub half_bit: Vec<f64>,
    pub one_seventh: Resolution,
    pub half_bit_resolution: Resolution,
    pub pixel_size_m: Option<f64>,
    pub alignment: HalfSetAlignment,
    /// `b` registered and phase-aligned on `a`'s grid (`[H, W]`).
    pub aligned_b: Array2<Complex32>,
    /// The compared pixels (`[H, W]`).
    pub mask: Array2<bool>,
}

impl HalfSetFrc {
    /// `curve.cycles_per_px` in nm⁻¹, with a pixel size.
    pub fn frequency_per_nm(&self) -> Option<Vec<f64>> {
        let nm = self.pixel_size_m? * 1e9;
        Some(self.curve.cycles_per_px.iter().map(|f| f / nm).collect())
    }
}

/// The half-set FRC of two reconstructions of interleaved halves of one
/// scan (see the module docs). `coverage_*`: each half's coverage on the
/// same grid (`None`: every pixel counts as covered).
///
/// # Shapes
/// `a`, `b`, and the coverages: the same `[H, W]`.
pub fn half_set_frc(
    a: ArrayView2<'_, Complex32>,
    coverage_a: Option<ArrayView2<'_, f32>>,
    b: ArrayView2<'_, Complex32>,
    coverage_b: Option<ArrayView2<'_, f32>>,
    cfg: &HalfSetConfig,
) -> Result<HalfSetFrc> {
    cfg.validate()?;
    let shape = [a.nrows(), a.ncols()];
    let cov = Coverages::new(a, coverage_a, b, coverage_b, cfg.coverage_fraction)?;
    let mut cov_b = cov.b.clone();
    let common = |cov_b: &Array2<f64>| cov.common(cov_b);
    let a64 = to64(&a.to_owned());
    let mut b_aligned = b.to_owned();
    let mut shift_px = None;
    if let Some(u) = cfg.upsample_factor {
        let shift = register(a64.view(), b, &cov, u, cfg)?;
        b_aligned = fourier_shift(b, shift);
        cov_b = shift_bilinear(cov_b.view(), shift);
        shift_px = Some(shift);
    }
    let mask = common(&cov_b);
    let region = bounding_box(mask.view(), "common region of the halves (after registration)")?;
    let [h, w] = region.shape();
    if h < 4 || w < 4 {
        return Err(Error::value(
            "common region of the halves",
            format!("is {h}×{w} px ({region}): too small for an FRC (at least 4×4)"),
        ));
    }

    let mut b64 = to64(&b_aligned);
    let (mut phase_offset_rad, mut phase_ramp_rad_per_px) = (None, None);
    if cfg.remove_phase_ramp {
        let plane = relative_phase(a64.view(), b64.view(), mask.view(), region);
        for ((y, x), v) in b64.indexed_iter_mut() {
            *v *= Complex64::from_polar(1.0, plane.at(y, x));
        }
        phase_offset_rad = Some(plane.offset_rad);
        phase_ramp_rad_per_px = Some(plane.ramp_rad_per_px);
        b_aligned = b64.mapv(|v| Complex32::new(v.re as f32, v.im as f32));
    }

    let taper_px = cfg.taper_px.unwrap_or_else(|| default_taper_px(region));
    let curve = apodised_frc(a64.view(), b64.view(), mask.view(), taper_px)?;
    let half_bit = curve.half_bit();
    let one_seventh = Resolution::new(
        "1/7",
        &curve,
        curve.crossing_of(&vec![FRC_ONE_SEVENTH; curve.frc.len()], 1),
        cfg.pixel_size_m,
    );
    let half_bit_resolution = Resolution::new("half-bit", &curve, curve.crossing_of(&half_bit, 1), cfg.pixel_size_m);
    Ok(HalfSetFrc {
        alignment: HalfSetAlignment {
            input_shape: shape,
            shift_px,
            phase_offset_rad,
            phase_ramp_rad_per_px,
            coverage_fraction: cfg.coverage_fraction,
            region,
            compared_pixels: mask.iter().filter(|&&m| m).count(),
            taper_px,
            fft_size_px: curve.size_px,
        },
        curve,
        half_bit,
        one_seventh,
        half_bit_resolution,
        pixel_size_m: cfg.pixel_size_m,
        aligned_b: b_aligned,
        mask,
    })
}

/// Step 2 of the module docs alone: the shift `[dy, dx]` (px) that
/// registers `b` on `a` (`fourier_shift(b, shift) ≈ a`) over the pixels
/// both cover, with `cfg`'s coverage fraction, taper, precision (1/50 px
/// when `cfg.upsample_factor` is `None`) and phase removal (the fine step
/// needs it). For any two reconstructions of one object on one grid (e.g. a
/// reference from another tool, `ptycho compare --reference`).
pub fn register_halves(
    a: ArrayView2<'_, Complex32>,
    coverage_a: Option<ArrayView2<'_, f32>>,
    b: ArrayView2<'_, Complex32>,
    coverage_b: Option<ArrayView2<'_, f32>>,
    cfg: &HalfSetConfig,
) -> Result<[f64; 2]> {
    cfg.validate()?;
    let cov = Coverages::new(a, coverage_a, b, coverage_b, cfg.coverage_fraction)?;
    register(
        to64(&a.to_owned()).view(),
        b,
        &cov,
        cfg.upsample_factor.unwrap_or(50),
        cfg,
    )
}

/// A coverage map moved by `shift_px` as [`fourier_shift`] moves its
/// object (`out(y, x) = c(y − dy, x − dx)`), bilinearly, 0 where it comes
/// from outside the grid.
pub fn shift_coverage(c: ArrayView2<'_, f32>, shift_px: [f64; 2]) -> Array2<f32> {
    shift_bilinear(c.mapv(|v| v as f64).view(), shift_px).mapv(|v| v as f32)
}

/// Both halves' coverages (ones without one) and thresholds.
struct Coverages {
    b: Array2<f64>,
    threshold_b: f64,
    mask_a: Array2<bool>,
}

impl Coverages {
    fn new(
        a: ArrayView2<'_, Complex32>,
        coverage_a: Option<ArrayView2<'_, f32>>,
        b: ArrayView2<'_, Complex32>,
        coverage_b: Option<ArrayView2<'_, f32>>,
        fraction: f64,
    ) -> Result<Self> {
        let shape = [a.nrows(), a.ncols()];
        check_object("half-set reconstruction a", a, shape)?;
        check_object("half-set reconstruction b", b, shape)?;
        let cov = |what: &str, c: Option<ArrayView2<'_, f32>>| -> Result<(Array2<f64>, f64)> {
            let c = match c {
                None => Array2::ones((shape[0], shape[1])),
                Some(c) => {
                    if c.shape() != shape {
                        return Err(Error::shape(
                            what,
                            format!("{shape:?} (the object's shape)"),
                            format!("{:?}", c.shape()),
                        ));
                    }
                    let c = c.mapv(|v| v as f64);
                    super::basic::check_finite(what, c.view())?;
                    c
                }
            };
            let max = c.fold(0.0f64, |m, &v| m.max(v));
            if max <= 0.0 {
                return Err(Error::value(what, "is zero everywhere: nothing was reconstructed"));
            }
            Ok((c, fraction * max))
        };
        let (a, threshold_a) = cov("coverage of a", coverage_a)?;
        let (b, threshold_b) = cov("coverage of b", coverage_b)?;
        let mask_a = a.mapv(|v| v >= threshold_a);
        Ok(Coverages { b, threshold_b, mask_a })
    }

    /// Pixels `a` covers and `cov_b` (b's coverage, perhaps moved) does.
    fn common(&self, cov_b: &Array2<f64>) -> Array2<bool> {
        Zip::from(&self.mask_a)
            .and(cov_b)
            .map_collect(|&m, &c| m && c >= self.threshold_b)
    }
}

/// Step 2: coarse on the neighbour products, fine on the phase-aligned objects.
fn register(
    a64: ArrayView2<'_, Complex64>,
    b: ArrayView2<'_, Complex32>,
    cov: &Coverages,
    upsample_factor: u32,
    cfg: &HalfSetConfig,
) -> Result<[f64; 2]> {
    // the mean-free, edge-tapered region of `f` on `mask`
    let prepare = |f: ArrayView2<'_, Complex64>, mask: &Array2<bool>| -> Result<Array2<Complex64>> {
        let region = bounding_box(mask.view(), "common region of the halves")?;
        let window = edge_taper(mask.view(), cfg.taper_px.unwrap_or_else(|| default_taper_px(region)));
        Ok(crop(&tapered(f, window.view()), region))
    };
    // coarse: the neighbour products, blind to the phase offset and ramp
    let m0 = cov.common(&cov.b);
    let (fa, fm) = neighbour_products(a64, m0.view());
    let (fb, _) = neighbour_products(to64(&b.to_owned()).view(), m0.view());
    let (pa, pb) = (prepare(fa.view(), &fm)?, prepare(fb.view(), &fm)?);
    let mut shift = register_translation_complex(pa.view(), pb.view(), upsample_factor, CrossPower::Plain)?;
    if cfg.remove_phase_ramp {
        // fine: the objects themselves once the phase is aligned (a product
        // carries about twice the objects' noise)
        let mut b1 = to64(&fourier_shift(b, shift));
        let m1 = cov.common(&shift_bilinear(cov.b.view(), shift));
        let plane = relative_phase(a64, b1.view(), m1.view(), bounding_box(m1.view(), "common region")?);
        for ((y, x), v) in b1.indexed_iter_mut() {
            *v *= Complex64::from_polar(1.0, plane.at(y, x));
        }
        let (pa, pb) = (prepare(a64, &m1)?, prepare(b1.view(), &m1)?);
        let fine = register_translation_complex(pa.view(), pb.view(), upsample_factor, CrossPower::Plain)?;
        shift = [shift[0] + fine[0], shift[1] + fine[1]];
    }
    if let Some(max) = cfg.max_shift_px
        && (shift[0].abs() > max || shift[1].abs() > max)
    {
        return Err(Error::value(
            "registration of the halves",
            format!(
                "found a shift of ({:.2}, {:.2}) px, beyond max_shift_px = {max}: the halves hardly \
                 correlate (too little signal?); compare them unregistered (`ptycho frc --no-register`) \
                 or allow a larger shift (`--max-shift-px`)",
                shift[0], shift[1]
            ),
        ));
    }
    Ok(shift)
}

fn to64(o: &Array2<Complex32>) -> Array2<Complex64> {
    o.mapv(|v| Complex64::new(v.re as f64, v.im as f64))
}

/// The FRC of `a` and `b` over the pixels `mask` keeps (step 4–5 of the
/// module docs): on the mask's bounding box, each image less its
/// window-weighted mean `Σ w·o / Σ w`, times `w = `[`edge_taper`]`(mask,
/// taper_px)`, zero-padded (bottom and right) to a square of the box's
/// longer side, then [`frc_complex`]; ring 0 is set to NaN (the mean was
/// removed, so it holds rounding only).
///
/// # Shapes
/// `a`, `b`, `mask`: the same `[H, W]`.
pub fn apodised_frc(
    a: ArrayView2<'_, Complex64>,
    b: ArrayView2<'_, Complex64>,
    mask: ArrayView2<'_, bool>,
    taper_px: f64,
) -> Result<FrcCurve> {
    if a.dim() != b.dim() || mask.dim() != a.dim() {
        return Err(Error::shape(
            "FRC images and mask",
            format!("{:?} (the first image's shape)", a.shape()),
            format!("{:?} and {:?}", b.shape(), mask.shape()),
        ));
    }
    if !(taper_px.is_finite() && taper_px > 0.0) {
        return Err(Error::config(
            "taper_px",
            format!("must be finite and > 0, got {taper_px}"),
        ));
    }
    let region = bounding_box(mask, "FRC mask")?;
    let window = edge_taper(mask, taper_px);
    let [h, w] = region.shape();
    let n = h.max(w);
    let square = |img: ArrayView2<'_, Complex64>| {
        let t = crop(&tapered(img, window.view()), region);
        let mut out = Array2::zeros((n, n));
        out.slice_mut(s![..h, ..w]).assign(&t);
        out
    };
    let mut curve = frc_complex(square(a).view(), square(b).view())?;
    curve.frc[0] = f64::NAN;
    Ok(curve)
}

/// `L` when none is given: an eighth of the region's smaller side, at least 2 px.
fn default_taper_px(region: ScanRegion) -> f64 {
    let [h, w] = region.shape();
    (h.min(w) as f64 / 8.0).max(2.0)
}

/// The bounding box of the `true` pixels.
fn bounding_box(mask: ArrayView2<'_, bool>, what: &str) -> Result<ScanRegion> {
    ScanRegion::from_mask(mask, what).map_err(|_| {
        Error::value(
            what,
            "is empty: the halves' coverages share no pixel above the coverage fraction",
        )
    })
}

fn crop<T: Clone>(a: &Array2<T>, r: ScanRegion) -> Array2<T> {
    a.slice(s![r.y0..r.y1, r.x0..r.x1]).to_owned()
}

/// `w·(o − Σ w·o / Σ w)`: zero where `w` is.
fn tapered(o: ArrayView2<'_, Complex64>, w: ArrayView2<'_, f64>) -> Array2<Complex64> {
    let (sum, weight) = Zip::from(o)
        .and(w)
        .fold((Complex64::new(0.0, 0.0), 0.0), |(s, n), &v, &w| (s + v * w, n + w));
    let mean = if weight > 0.0 {
        sum / weight
    } else {
        Complex64::new(0.0, 0.0)
    };
    Zip::from(o).and(w).map_collect(|&v, &w| (v - mean) * w)
}

/// `g(o) = (o(y, x+1) + o(y+1, x))·conj(o(y, x))` where the pixel and both
/// neighbours are in `mask`, 0 elsewhere; and that mask.
fn neighbour_products(o: ArrayView2<'_, Complex64>, mask: ArrayView2<'_, bool>) -> (Array2<Complex64>, Array2<bool>) {
    let (h, w) = o.dim();
    let mut g = Array2::zeros((h, w));
    let mut m = Array2::from_elem((h, w), false);
    for y in 0..h.saturating_sub(1) {
        for x in 0..w.saturating_sub(1) {
            if mask[[y, x]] && mask[[y, x + 1]] && mask[[y + 1, x]] {
                g[[y, x]] = (o[[y, x + 1]] + o[[y + 1, x]]) * o[[y, x]].conj();
                m[[y, x]] = true;
            }
        }
    }
    (g, m)
}

/// `out(y, x) = a(y − dy, x − dx)`, bilinear, 0 outside.
fn shift_bilinear(a: ArrayView2<'_, f64>, shift_px: [f64; 2]) -> Array2<f64> {
    let (h, w) = a.dim();
    let at = |y: i64, x: i64| {
        if y < 0 || x < 0 || y >= h as i64 || x >= w as i64 {
            0.0
        } else {
            a[[y as usize, x as usize]]
        }
    };
    Array2::from_shape_fn((h, w), |(y, x)| {
        let (sy, sx) = (y as f64 - shift_px[0], x as f64 - shift_px[1]);
        let (fy, fx) = (sy.floor(), sx.floor());
        let (ty, tx) = (sy - fy, sx - fx);
        let (iy, ix) = (fy as i64, fx as i64);
        (1.0 - ty) * ((1.0 - tx) * at(iy, ix) + tx * at(iy, ix + 1))
            + ty * ((1.0 - tx) * at(iy + 1, ix) + tx * at(iy + 1, ix + 1))
    })
}

fn check_object(what: &str, o: ArrayView2<'_, Complex32>, shape: [usize; 2]) -> Result<()> {
    if o.shape() != shape {
        return Err(Error::shape(
            what,
            format!("{shape:?} (a's shape)"),
            format!("{:?}", o.shape()),
        ));
    }
    if o.is_empty() {
        return Err(Error::shape(what, "non-empty [H, W]", format!("{:?}", o.shape())));
    }
    match o.indexed_iter().find(|(_, v)| !(v.re.is_finite() && v.im.is_finite())) {
        None => Ok(()),
        Some(((i, j), v)) => Err(Error::value(what, format!("contains {v} at pixel (row {i}, col {j})"))),
    }
}
