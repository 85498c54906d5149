//! All metrics of one pair of real images.
use ndarray::ArrayView2;
use serde::Serialize;

use super::basic::{check_pair, check_range, mse_unchecked, psnr_from_mse};
use super::frc::{FRC_HALF, FRC_ONE_SEVENTH, FrcCurve, frc};
use super::ssim::{ms_ssim, ssim};
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
    metrics_parts(truth, pred, truth, pred, data_range)
}

/// Pixel errors (MAE, MSE) and the FRC on `truth`/`pred`; PSNR, SSIM and
/// MS-SSIM on `truth_r`/`pred_r` with data range `R` (the phase convention
/// maps the images first).
pub(crate) fn metrics_parts(
    truth: ArrayView2<'_, f64>,
    pred: ArrayView2<'_, f64>,
    truth_r: ArrayView2<'_, f64>,
    pred_r: ArrayView2<'_, f64>,
    data_range: f64,
) -> Result<(ImageMetrics, FrcCurve)> {
    check_pair(truth, pred)?;
    check_pair(truth_r, pred_r)?;
    check_range(data_range)?;
    let mae = truth.iter().zip(pred.iter()).map(|(a, b)| (a - b).abs()).sum::<f64>() / truth.len() as f64;
    let mse = mse_unchecked(truth, pred);
    let psnr = psnr_from_mse(mse_unchecked(truth_r, pred_r), data_range);
    let ssim_v = ssim(truth_r, pred_r, data_range)?;
    let ms = ms_ssim(truth_r, pred_r, data_range)?;
    let curve = frc(truth, pred)?;
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
