//! Pixel-wise errors (MAE, MSE, PSNR) and the input checks every metric shares.
use ndarray::ArrayView2;

use crate::error::{Error, Result};

/// Checks that `truth` and `pred` are non-empty, the same shape and finite.
pub(crate) fn check_pair(truth: ArrayView2<'_, f64>, pred: ArrayView2<'_, f64>) -> Result<()> {
    if truth.is_empty() {
        return Err(Error::shape(
            "truth image",
            "non-empty [H, W]",
            format!("{:?}", truth.shape()),
        ));
    }
    if pred.dim() != truth.dim() {
        return Err(Error::shape(
            "predicted image",
            format!("{:?} (the truth's shape)", truth.shape()),
            format!("{:?}", pred.shape()),
        ));
    }
    check_finite("truth image", truth)?;
    check_finite("predicted image", pred)
}

/// An error naming the first non-finite pixel.
pub(crate) fn check_finite(what: &str, a: ArrayView2<'_, f64>) -> Result<()> {
    match a.indexed_iter().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some(((i, j), v)) => Err(Error::value(what, format!("contains {v} at pixel (row {i}, col {j})"))),
    }
}

/// Checks a data range (the `R` of PSNR and SSIM): finite and > 0.
pub(crate) fn check_range(data_range: f64) -> Result<()> {
    if data_range.is_finite() && data_range > 0.0 {
        Ok(())
    } else {
        Err(Error::value(
            "data_range",
            format!("must be finite and > 0, got {data_range} (a constant truth image has no range)"),
        ))
    }
}

/// Mean absolute error `mean|truth − pred|`.
pub fn mae(truth: ArrayView2<'_, f64>, pred: ArrayView2<'_, f64>) -> Result<f64> {
    check_pair(truth, pred)?;
    let s: f64 = truth.iter().zip(pred.iter()).map(|(a, b)| (a - b).abs()).sum();
    Ok(s / truth.len() as f64)
}

/// Mean squared error `mean (truth − pred)²` (scikit-image `mean_squared_error`).
pub fn mse(truth: ArrayView2<'_, f64>, pred: ArrayView2<'_, f64>) -> Result<f64> {
    check_pair(truth, pred)?;
    Ok(mse_unchecked(truth, pred))
}

pub(crate) fn mse_unchecked(truth: ArrayView2<'_, f64>, pred: ArrayView2<'_, f64>) -> f64 {
    let s: f64 = truth.iter().zip(pred.iter()).map(|(a, b)| (a - b) * (a - b)).sum();
    s / truth.len() as f64
}

/// Peak signal-to-noise ratio `10·log10(R² / MSE)` in dB, with the data
/// range `R` given explicitly (scikit-image `peak_signal_noise_ratio(…,
/// data_range=R)`). Identical images give `+∞`.
pub fn psnr(truth: ArrayView2<'_, f64>, pred: ArrayView2<'_, f64>, data_range: f64) -> Result<f64> {
    check_pair(truth, pred)?;
    check_range(data_range)?;
    Ok(psnr_from_mse(mse_unchecked(truth, pred), data_range))
}

pub(crate) fn psnr_from_mse(mse: f64, data_range: f64) -> f64 {
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (data_range * data_range / mse).log10()
    }
}
