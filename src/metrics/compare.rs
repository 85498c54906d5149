//! Comparing a reconstructed complex object with the truth: the alignment
//! pipeline (what is cropped, shifted, rotated in phase, rescaled) as a
//! config, the record of what was applied, and the metrics of amplitude
//! and phase.
use std::f64::consts::PI;

use ndarray::{Array2, ArrayView2, Zip};
use num_complex::{Complex32, Complex64};
use serde::{Deserialize, Serialize};

use super::align::{
    PhasePlane, ScanRegion, crop_border, fit_plane, fit_plane_masked, fourier_shift, phase_offset, phase_offset_masked,
    register_translation,
};
use super::frc::FrcCurve;
use super::image::{ImageMetrics, metrics_parts};
use super::ssim::SSIM_WINDOW_PX;
use crate::error::{Error, Result};

/// How the prediction's phase is aligned with the truth's before metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseAlign {
    /// Phases compared as `arg()` gives them.
    None,
    /// The prediction is multiplied by the global unit factor `e^{iθ}`,
    /// `θ = arg Σ truth·conj(pred)` over the compared region.
    Offset,
    /// The global offset first (as [`Offset`](Self::Offset), so that both
    /// phases wrap at the same places), then a least-squares plane
    /// `a·x + b·y + c` fitted to each image's phase (`arg()`, not unwrapped)
    /// and subtracted from it, independently (PtychoPINN
    /// `phase_align_method='plane'`, which omits the first step: a
    /// reconstruction whose arbitrary global phase wraps part of it past ±π
    /// then scores as noise).
    Plane,
}

/// How the prediction's amplitude is scaled before metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmplitudeScale {
    None,
    /// `pred ← pred · mean|truth| / mean|pred|` over the compared region (PtychoPINN).
    Mean,
}

/// The data range `R` of the amplitude PSNR, SSIM and MS-SSIM.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataRange {
    /// `max − min` of the truth's amplitude over the compared region (PtychoPINN's SSIM).
    TruthSpan,
    /// A fixed range, amplitude units.
    Fixed(f64),
}

/// The images and range of the phase PSNR, SSIM and MS-SSIM. (Phase MAE and
/// MSE are always in radians and the FRC is on radians; the FRC does not
/// depend on an affine map anyway, except at ring 0.)
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PhaseScale {
    /// Both phases mapped by `(φ + π) / 2π` (so `[−π, π] → [0, 1]`), `R = 1`
    /// (PtychoPINN's SSIM convention).
    UnitInterval,
    /// Phases in radians with this data range.
    Radians { data_range_rad: f64 },
    /// Phases mapped as for `UnitInterval`, `R = (max − min)/2π` of the
    /// aligned truth phase over the compared region: the amplitude's
    /// convention. Stricter than the unit interval's `R = 1`, which forgives
    /// phase detail much smaller than 2π (a constant guess on the quickstart
    /// object: phase SSIM 0.32 here, 0.64 there). Mapped rather than in
    /// radians: on signed radians SSIM's luminance term compares means near
    /// 0 and swings with their signs (the same constant scores 0.02).
    TruthSpan,
}

/// Sub-pixel registration of the prediction onto the truth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// Precision `1/upsample_factor` px of the cross-correlation peak (PtychoPINN: 50).
    pub upsample_factor: u32,
    /// Pixels dropped on every side of both images after the shift, where
    /// the periodic Fourier shift wrapped (PtychoPINN: 2).
    pub border_crop_px: usize,
}

/// What `compare_objects` does before measuring, in order: region crop →
/// registration (+ border crop) → trim → amplitude scale and phase alignment
/// over what remains. Recorded in every [`Comparison`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlignConfig {
    /// Region of both objects to compare, object pixels (typically
    /// [`ScanRegion::from_positions`]); `None` = the whole objects.
    pub region: Option<ScanRegion>,
    /// Registration of the prediction on the truth (magnitudes); `None` = off.
    pub registration: Option<Registration>,
    /// Pixels dropped on every side just before the metrics (PtychoPINN's
    /// `trim`: `offset // 2` = 2).
    pub trim_px: usize,
    pub phase_align: PhaseAlign,
    pub amplitude_scale: AmplitudeScale,
    pub amplitude_data_range: DataRange,
    pub phase_scale: PhaseScale,
    /// Pixels to score, on the objects' full `[H, W]` grid (e.g. those a
    /// probe illuminated, [`crate::physics::illuminated_mask`]): cropped
    /// with the images, and every fit (amplitude scale, phase offset and
    /// plane) and metric then uses only these pixels. `None` scores every
    /// pixel of the region. Not serialised: [`Alignment`] records how many
    /// pixels it kept.
    #[serde(skip)]
    pub mask: Option<std::sync::Arc<Array2<bool>>>,
}

impl AlignConfig {
    /// PtychoPINN's evaluation (`scripts/compare_models.py` +
    /// `eval_reconstruction`): registration at 1/50 px with a 2-px border
    /// crop, a 2-px trim, plane phase removal, mean amplitude scaling,
    /// amplitude range = the truth's span, phase mapped to `[0, 1]`. The
    /// region is the caller's (PtychoPINN: scan bounding box ± 10 px).
    pub fn ptychopinn(region: Option<ScanRegion>) -> Self {
        AlignConfig {
            region,
            registration: Some(Registration {
                upsample_factor: 50,
                border_crop_px: 2,
            }),
            trim_px: 2,
            phase_align: PhaseAlign::Plane,
            amplitude_scale: AmplitudeScale::Mean,
            amplitude_data_range: DataRange::TruthSpan,
            phase_scale: PhaseScale::UnitInterval,
            mask: None,
        }
    }

    /// No alignment at all: whole images, no shift, no trim, phases and
    /// amplitudes as they are (ranges as in [`ptychopinn`](Self::ptychopinn)).
    pub fn none() -> Self {
        AlignConfig {
            region: None,
            registration: None,
            trim_px: 0,
            phase_align: PhaseAlign::None,
            amplitude_scale: AmplitudeScale::None,
            amplitude_data_range: DataRange::TruthSpan,
            phase_scale: PhaseScale::UnitInterval,
            mask: None,
        }
    }

    /// Checks the fields that do not depend on the images.
    pub fn validate(&self) -> Result<()> {
        if let Some(r) = &self.registration
            && !(1..=10_000).contains(&r.upsample_factor)
        {
            return Err(Error::config(
                "registration.upsample_factor",
                format!("must be in 1..=10000, got {}", r.upsample_factor),
            ));
        }
        if let DataRange::Fixed(r) = self.amplitude_data_range
            && !(r.is_finite() && r > 0.0)
        {
            return Err(Error::config(
                "amplitude_data_range",
                format!("must be finite and > 0, got {r}"),
            ));
        }
        if let PhaseScale::Radians { data_range_rad } = self.phase_scale
            && !(data_range_rad.is_finite() && data_range_rad > 0.0)
        {
            return Err(Error::config(
                "phase_scale.data_range_rad",
                format!("must be finite and > 0, got {data_range_rad}"),
            ));
        }
        Ok(())
    }
}

impl Default for AlignConfig {
    /// [`AlignConfig::ptychopinn`] without a region.
    fn default() -> Self {
        AlignConfig::ptychopinn(None)
    }
}

/// What was applied, with the resolved numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alignment {
    /// `[H, W]` of the objects given.
    pub input_shape: [usize; 2],
    /// The region compared (the whole object when none was configured).
    pub region: ScanRegion,
    /// `[dy, dx]` px applied to the prediction (`out(y, x) = pred(y − dy, x − dx)`); `None` without registration.
    pub shift_px: Option<[f64; 2]>,
    /// Border dropped after the shift (0 without registration).
    pub registration_crop_px: usize,
    pub trim_px: usize,
    /// `[H, W]` of the images the metrics saw.
    pub metric_shape: [usize; 2],
    pub phase_align: PhaseAlign,
    /// `θ` of [`PhaseAlign::Offset`] and [`PhaseAlign::Plane`], radians
    /// (prediction multiplied by `e^{iθ}`).
    pub phase_offset_rad: Option<f64>,
    /// Planes removed with [`PhaseAlign::Plane`] (coordinates of the metric crop).
    pub phase_plane_truth: Option<PhasePlane>,
    pub phase_plane_pred: Option<PhasePlane>,
    pub amplitude_scaling: AmplitudeScale,
    /// The factor the prediction's amplitude was multiplied by (1 for `None`).
    pub amplitude_scale: f64,
    pub amplitude_data_range: DataRange,
    /// The resolved amplitude `R`.
    pub amplitude_range: f64,
    pub phase_scale: PhaseScale,
    /// The resolved phase `R` (1 for the unit interval).
    pub phase_range: f64,
    /// With a mask: the pixels of the metric crop that were scored, and
    /// their share of it; `None` when every pixel was.
    pub scored_pixels: Option<usize>,
    pub scored_fraction: Option<f64>,
}

/// The result of [`compare_objects`]. Owns its data (notebook friendly).
#[derive(Debug, Clone)]
pub struct Comparison {
    pub alignment: Alignment,
    pub amplitude: ImageMetrics,
    /// Phase metrics: MAE, MSE and FRC on radians; PSNR, SSIM, MS-SSIM per [`PhaseScale`].
    pub phase: ImageMetrics,
    pub frc_amplitude: FrcCurve,
    pub frc_phase: FrcCurve,
    /// The truth as compared (cropped; planes removed with [`PhaseAlign::Plane`]).
    pub aligned_truth: Array2<Complex32>,
    /// The prediction as compared (cropped, shifted, scaled, phase-aligned).
    pub aligned_pred: Array2<Complex32>,
    /// The phase images the metrics saw, radians (not re-wrapped, unlike `arg(aligned_*)`).
    pub phase_truth: Array2<f64>,
    pub phase_pred: Array2<f64>,
}

/// `max − min` of a truth component over the compared region, the data
/// range of the `TruthSpan` conventions; a flat truth has none (`hint` says
/// what to give instead).
fn truth_span(truth: &Array2<f64>, component: &str, hint: &str) -> Result<f64> {
    let (lo, hi) = truth.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    if hi <= lo {
        return Err(Error::value(
            format!("{component} data range"),
            format!("the truth's {component} is constant over the compared region (span 0); {hint}"),
        ));
    }
    Ok(hi - lo)
}

/// Aligns `pred` on `truth` as `cfg` says and measures amplitude and phase.
///
/// # Shapes
/// `truth`, `pred`: the same `[H, W]` complex64; what remains after the
/// crops must be at least 11×11 (the SSIM window).
pub fn compare_objects(truth: &Array2<Complex32>, pred: &Array2<Complex32>, cfg: &AlignConfig) -> Result<Comparison> {
    cfg.validate()?;
    if truth.dim() != pred.dim() {
        return Err(Error::shape(
            "predicted object",
            format!("{:?} (the truth's shape)", truth.shape()),
            format!("{:?}", pred.shape()),
        ));
    }
    check_complex("truth object", truth.view())?;
    check_complex("predicted object", pred.view())?;
    let input_shape = [truth.nrows(), truth.ncols()];
    if let Some(m) = &cfg.mask
        && m.dim() != truth.dim()
    {
        return Err(Error::shape(
            "metric mask",
            format!("{:?} (the objects' shape)", truth.shape()),
            format!("{:?}", m.shape()),
        ));
    }
    let region = cfg.region.unwrap_or(ScanRegion::full(input_shape));
    let mut t = region.crop(truth.view())?;
    let mut p = region.crop(pred.view())?;
    let mut mask = cfg.mask.as_ref().map(|m| region.crop(m.view())).transpose()?;

    let (mut shift_px, mut registration_crop_px) = (None, 0);
    if let Some(reg) = &cfg.registration {
        // unscored pixels hold no information: both images get their
        // scored mean there, so they cannot pull the correlation peak
        let fill = |a: Array2<f64>| match &mask {
            Some(m) => fill_unscored(a, m),
            None => a,
        };
        let shift = register_translation(
            fill(amplitude(t.view())).view(),
            fill(amplitude(p.view())).view(),
            reg.upsample_factor,
        )?;
        p = fourier_shift(p.view(), shift);
        t = crop_border(t.view(), reg.border_crop_px)?;
        p = crop_border(p.view(), reg.border_crop_px)?;
        mask = mask.map(|m| crop_border(m.view(), reg.border_crop_px)).transpose()?;
        shift_px = Some(shift);
        registration_crop_px = reg.border_crop_px;
    }
    if cfg.trim_px > 0 {
        t = crop_border(t.view(), cfg.trim_px)?;
        p = crop_border(p.view(), cfg.trim_px)?;
        mask = mask.map(|m| crop_border(m.view(), cfg.trim_px)).transpose()?;
    }
    let (h, w) = t.dim();
    if h < SSIM_WINDOW_PX || w < SSIM_WINDOW_PX {
        return Err(Error::shape(
            "compared region (after region, registration and trim crops)",
            format!("at least {SSIM_WINDOW_PX}×{SSIM_WINDOW_PX} (the SSIM window)"),
            format!("{h}×{w}"),
        ));
    }
    let scored_pixels = mask.as_ref().map(|m| m.iter().filter(|&&k| k).count());
    if scored_pixels == Some(0) {
        return Err(Error::value("metric mask", "keeps no pixel of the compared region"));
    }
    let masked_mean = |a: &Array2<f64>| match &mask {
        None => a.mean().unwrap_or(0.0),
        Some(m) => {
            let (s, n) = Zip::from(a)
                .and(m)
                .fold((0.0, 0usize), |(s, n), &v, &k| if k { (s + v, n + 1) } else { (s, n) });
            s / n.max(1) as f64
        }
    };

    let amp_t = amplitude(t.view());
    let mut amp_p = amplitude(p.view());
    let amplitude_scale = match cfg.amplitude_scale {
        AmplitudeScale::None => 1.0,
        AmplitudeScale::Mean => {
            let (mt, mp) = (masked_mean(&amp_t), masked_mean(&amp_p));
            if mp <= 0.0 {
                return Err(Error::value(
                    "predicted amplitude",
                    "mean is zero over the compared region: cannot scale it to the truth's mean",
                ));
            }
            mt / mp
        }
    };
    amp_p.mapv_inplace(|v| v * amplitude_scale);
    p.mapv_inplace(|v| v * amplitude_scale as f32);

    let (mut phase_offset_rad, mut phase_plane_truth, mut phase_plane_pred) = (None, None, None);
    if matches!(cfg.phase_align, PhaseAlign::Offset | PhaseAlign::Plane) {
        let theta = match &mask {
            None => phase_offset(t.view(), p.view())?,
            Some(m) => phase_offset_masked(t.view(), p.view(), m.view())?,
        };
        let u = Complex32::from_polar(1.0, theta as f32);
        p.mapv_inplace(|v| v * u);
        phase_offset_rad = Some(theta);
    }
    let mut ph_t = phase(t.view());
    let mut ph_p = phase(p.view());
    if cfg.phase_align == PhaseAlign::Plane {
        let (pt, pp) = match &mask {
            None => (fit_plane(ph_t.view())?, fit_plane(ph_p.view())?),
            Some(m) => (
                fit_plane_masked(ph_t.view(), m.view())?,
                fit_plane_masked(ph_p.view(), m.view())?,
            ),
        };
        ph_t = pt.subtract_from(ph_t.view());
        ph_p = pp.subtract_from(ph_p.view());
        t = polar(amp_t.view(), ph_t.view());
        p = polar(amp_p.view(), ph_p.view());
        phase_plane_truth = Some(pt);
        phase_plane_pred = Some(pp);
    }

    // the truth's spans over the scored pixels
    let scored = |a: &Array2<f64>| match &mask {
        None => a.clone(),
        Some(m) => fill_unscored(a.clone(), m),
    };
    let mv = mask.as_ref().map(|m| m.view());
    let amplitude_range = match cfg.amplitude_data_range {
        DataRange::Fixed(r) => r,
        DataRange::TruthSpan => truth_span(&scored(&amp_t), "amplitude", "give a fixed range")?,
    };
    let (amplitude_m, frc_amplitude) = metrics_parts(
        amp_t.view(),
        amp_p.view(),
        amp_t.view(),
        amp_p.view(),
        amplitude_range,
        mv,
    )?;
    let (phase_m, frc_phase, phase_range) = if let PhaseScale::Radians { data_range_rad } = cfg.phase_scale {
        let (m, c) = metrics_parts(ph_t.view(), ph_p.view(), ph_t.view(), ph_p.view(), data_range_rad, mv)?;
        (m, c, data_range_rad)
    } else {
        // phases mapped by (φ + π)/2π; R = 1 or the truth's span on that scale
        let r = match cfg.phase_scale {
            PhaseScale::TruthSpan => truth_span(&scored(&ph_t), "phase", "give a range in radians")? / (2.0 * PI),
            _ => 1.0,
        };
        let unit = |a: &Array2<f64>| a.mapv(|v| (v + PI) / (2.0 * PI));
        let (m, c) = metrics_parts(ph_t.view(), ph_p.view(), unit(&ph_t).view(), unit(&ph_p).view(), r, mv)?;
        (m, c, r)
    };

    Ok(Comparison {
        alignment: Alignment {
            input_shape,
            region,
            shift_px,
            registration_crop_px,
            trim_px: cfg.trim_px,
            metric_shape: [h, w],
            phase_align: cfg.phase_align,
            phase_offset_rad,
            phase_plane_truth,
            phase_plane_pred,
            amplitude_scaling: cfg.amplitude_scale,
            amplitude_scale,
            amplitude_data_range: cfg.amplitude_data_range,
            amplitude_range,
            phase_scale: cfg.phase_scale,
            phase_range,
            scored_pixels,
            scored_fraction: scored_pixels.map(|n| n as f64 / (h * w) as f64),
        },
        amplitude: amplitude_m,
        phase: phase_m,
        frc_amplitude,
        frc_phase,
        aligned_truth: t,
        aligned_pred: p,
        phase_truth: ph_t,
        phase_pred: ph_p,
    })
}

/// `a` with every unscored pixel set to the mean of the scored ones.
fn fill_unscored(mut a: Array2<f64>, mask: &Array2<bool>) -> Array2<f64> {
    let (s, n) = Zip::from(&a)
        .and(mask)
        .fold((0.0, 0usize), |(s, n), &v, &k| if k { (s + v, n + 1) } else { (s, n) });
    let mean = s / n.max(1) as f64;
    Zip::from(&mut a).and(mask).for_each(|v, &k| {
        if !k {
            *v = mean;
        }
    });
    a
}

fn check_complex(what: &str, a: ArrayView2<'_, Complex32>) -> Result<()> {
    if a.is_empty() {
        return Err(Error::shape(what, "non-empty [H, W]", format!("{:?}", a.shape())));
    }
    match a.indexed_iter().find(|(_, v)| !(v.re.is_finite() && v.im.is_finite())) {
        None => Ok(()),
        Some(((i, j), v)) => Err(Error::value(what, format!("contains {v} at pixel (row {i}, col {j})"))),
    }
}

fn amplitude(a: ArrayView2<'_, Complex32>) -> Array2<f64> {
    a.mapv(|v| (v.re as f64).hypot(v.im as f64))
}

fn phase(a: ArrayView2<'_, Complex32>) -> Array2<f64> {
    a.mapv(|v| (v.im as f64).atan2(v.re as f64))
}

fn polar(amp: ArrayView2<'_, f64>, ph: ArrayView2<'_, f64>) -> Array2<Complex32> {
    Zip::from(amp).and(ph).map_collect(|&a, &p| {
        let c = Complex64::from_polar(a, p);
        Complex32::new(c.re as f32, c.im as f32)
    })
}
