//! All metrics of one pair of real images.
use ndarray::{Array2, ArrayView2, Zip};
use serde::Serialize;

use super::basic::{check_pair, check_range, mse_unchecked, psnr_from_mse};
use super::frc::{FRC_HALF, FRC_ONE_SEVENTH, FrcCurve, frc};
use super::ssim::{ms_ssim, ms_ssim_masked, ssim, ssim_masked};
use crate::error::Result;

/// The metrics of a predicted image against the truth. Serialised to JSON,
/// an infinite PSNR (identical images) becomes `null`, as do crossings the
/// FRC never reaches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ImageMetrics {
    /// Mean absolute error, in image units.
    pub mae: f64,
    /// Mean squared error, in image units squared.
    pub mse: f64,
    /// `10·log10(R²/MSE)`, dB, with `R = data_range`.
    pub psnr: f64,
    /// Gaussian SSIM (scikit-image convention) with `R = data_range`.
    pub ssim: f64,
    /// Multi-scale SSIM (see [`ms_ssim`]).
    pub ms_ssim: f64,
    /// First crossing of FRC = 0.5, ring units (0 … N/2); `None` if never.
    pub frc50: Option<f64>,
    /// First crossing of FRC = 1/7, ring units; `None` if never.
    pub frc_1_7: Option<f64>,
    /// `frc50 / N`, cycles per pixel.
    pub frc50_cycles_per_px: Option<f64>,
    /// `frc_1_7 / N`, cycles per pixel.
    pub frc_1_7_cycles_per_px: Option<f64>,
    /// The data range `R` used for PSNR, SSIM and MS-SSIM.
    pub data_range: f64,
}

/// MAE, MSE, PSNR, SSIM, MS-SSIM and FRC of `pred` against `truth`, all on
/// these images and with the one data range `R` (required: no default).
///
/// # Shapes
/// `truth`, `pred`: `[H, W]`, both sides ≥ 11 (the SSIM window).
pub fn image_metrics(
    truth: ArrayView2<'_, f64>,
    pred: ArrayView2<'_, f64>,
    data_range: f64,
) -> Result<(ImageMetrics, FrcCurve)> {
    metrics_parts(truth, pred, truth, pred, data_range, None)
}

/// [`image_metrics`] on the pixels where `mask` is true: MAE, MSE and PSNR
/// over those pixels, SSIM and MS-SSIM maps averaged over them
/// ([`ssim_masked`]), and the FRC of both images with their masked mean
/// subtracted and every other pixel set to zero (what no measurement saw
/// contributes no frequency).
///
/// # Shapes
/// `truth`, `pred`, `mask`: `[H, W]`, both sides ≥ 11.
pub fn image_metrics_masked(
    truth: ArrayView2<'_, f64>,
    pred: ArrayView2<'_, f64>,
    data_range: f64,
    mask: ArrayView2<'_, bool>,
) -> Result<(ImageMetrics, FrcCurve)> {
    metrics_parts(truth, pred, truth, pred, data_range, Some(mask))
}

/// The mean of `a` over `mask`, then `(a − mean)` where the mask is true and 0 elsewhere.
fn masked_centred(a: ArrayView2<'_, f64>, mask: ArrayView2<'_, bool>) -> Array2<f64> {
    let (sum, n) = a
        .iter()
        .zip(mask.iter())
        .filter(|(_, m)| **m)
        .fold((0.0, 0usize), |(s, n), (v, _)| (s + v, n + 1));
    let mean = sum / n.max(1) as f64;
    Zip::from(a)
        .and(mask)
        .map_collect(|&v, &m| if m { v - mean } else { 0.0 })
}

/// Pixel errors (MAE, MSE) and the FRC on `truth`/`pred`; PSNR, SSIM and
/// MS-SSIM on `truth_r`/`pred_r` with data range `R` (the phase convention
/// maps the images first); with a mask, on its pixels only (see
/// [`image_metrics_masked`]).
pub(crate) fn metrics_parts(
    truth: ArrayView2<'_, f64>,
    pred: ArrayView2<'_, f64>,
    truth_r: ArrayView2<'_, f64>,
    pred_r: ArrayView2<'_, f64>,
    data_range: f64,
    mask: Option<ArrayView2<'_, bool>>,
) -> Result<(ImageMetrics, FrcCurve)> {
    check_pair(truth, pred)?;
    check_pair(truth_r, pred_r)?;
    check_range(data_range)?;
    let (mae, mse, psnr, ssim_v, ms, curve) = match mask {
        None => (
            truth.iter().zip(pred.iter()).map(|(a, b)| (a - b).abs()).sum::<f64>() / truth.len() as f64,
            mse_unchecked(truth, pred),
            psnr_from_mse(mse_unchecked(truth_r, pred_r), data_range),
            ssim(truth_r, pred_r, data_range)?,
            ms_ssim(truth_r, pred_r, data_range)?,
            frc(truth, pred)?,
        ),
        Some(m) => {
            let ssim_v = ssim_masked(truth_r, pred_r, data_range, m)?;
            let mean_over =
                |a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>, f: &dyn Fn(f64) -> f64| {
                    let (s, n) = Zip::from(a).and(b).and(m).fold((0.0, 0usize), |(s, n), x, y, &keep| {
                        if keep { (s + f(x - y), n + 1) } else { (s, n) }
                    });
                    s / n as f64
                };
            (
                mean_over(truth, pred, &|d| d.abs()),
                mean_over(truth, pred, &|d| d * d),
                psnr_from_mse(mean_over(truth_r, pred_r, &|d| d * d), data_range),
                ssim_v,
                ms_ssim_masked(truth_r, pred_r, data_range, m)?,
                frc(masked_centred(truth, m).view(), masked_centred(pred, m).view())?,
            )
        }
    };
    let metrics = ImageMetrics {
        mae,
        mse,
        psnr,
        ssim: ssim_v,
        ms_ssim: ms,
        frc50: curve.crossing(FRC_HALF),
        frc_1_7: curve.crossing(FRC_ONE_SEVENTH),
        frc50_cycles_per_px: curve.crossing_cycles_per_px(FRC_HALF),
        frc_1_7_cycles_per_px: curve.crossing_cycles_per_px(FRC_ONE_SEVENTH),
        data_range,
    };
    Ok((metrics, curve))
}
