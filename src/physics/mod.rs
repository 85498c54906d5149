//! The physics of far-field ptychography, on `tch` tensors (CPU or GPU).
//! No file IO and no printing here (ARCHITECTURE.md, invariants).
pub mod forward;
pub mod host;
pub mod noise;
pub mod object;
pub mod probe;
pub mod scan;
pub mod shift;

pub use forward::{exit_waves, extract_patches, far_field_amplitude, far_field_intensity};
pub use noise::{intensity_scale, noisy_amplitude_from_intensity, pattern_rng, sample_poisson};
pub use probe::{ZonePlate, disk_probe, object_pixel_size_m, wavelength_m, zone_plate_probe};
pub use shift::{translate, translate_channels, translate_crops};
