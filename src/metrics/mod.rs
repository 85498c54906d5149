//! Image-quality metrics of reconstructions against a truth (no IO).
//!
//! - [`basic`]: MAE, MSE, PSNR (explicit data range);
//! - [`ssim`](mod@ssim): SSIM as scikit-image (Gaussian window) and MS-SSIM;
//! - [`frc`](mod@frc): Fourier ring correlation and its crossings (FRC50, FRC1/7,
//!   the half-bit threshold), of real or complex images;
//! - [`half_set`]: the half-set FRC of two reconstructions of interleaved
//!   halves of a scan (registration, phase offset and ramp, apodisation):
//!   resolution without ground truth;
//! - [`align`]: region crops, sub-pixel registration, Fourier shifts, phase offsets and planes;
//! - [`compare`]: [`compare_objects`] (the alignment pipeline as an [`AlignConfig`]) and
//!   [`image_metrics`] for two real images;
//! - [`table`]: tables of comparisons (the caller writes them).
//!
//! Every convention (data ranges, phase mapping, alignment) is a parameter
//! and is recorded in the result ([`Alignment`], [`ImageMetrics::data_range`]).
pub mod align;
pub mod basic;
pub mod compare;
mod fft;
pub mod frc;
pub mod half_set;
pub mod image;
mod phase_ramp;
pub mod ssim;
pub mod table;
pub mod taper;

pub use align::{
    CrossPower, PhasePlane, ScanRegion, crop_border, fit_plane, fit_plane_masked, fourier_shift, phase_offset,
    phase_offset_masked, register_translation, register_translation_complex,
};
pub use basic::{mae, mse, psnr};
pub use compare::{
    AlignConfig, Alignment, AmplitudeScale, Comparison, DataRange, PhaseAlign, PhaseScale, Registration,
    compare_objects,
};
pub use frc::{FRC_HALF, FRC_ONE_SEVENTH, FrcCurve, frc, frc_complex, half_bit_threshold};
pub use half_set::{
    HalfSetAlignment, HalfSetConfig, HalfSetFrc, Resolution, apodised_frc, half_set_frc, register_halves,
    shift_coverage,
};
pub use image::{ImageMetrics, image_metrics, image_metrics_masked};
pub use ssim::{MS_SSIM_WEIGHTS, SSIM_WINDOW_PX, ms_ssim, ms_ssim_levels, ms_ssim_masked, ssim, ssim_masked};
pub use table::{frc_table, metrics_table};
pub use taper::edge_taper;
