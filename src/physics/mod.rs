//! The physics of far-field ptychography, on `tch` tensors (CPU or GPU).
//! No file IO and no printing here (ARCHITECTURE.md, invariants).
pub mod forward;
pub mod noise;
pub mod object;
pub mod probe;
pub mod scan;

pub use forward::{energy_per_pattern, exit_waves, extract_patches, far_field_amplitude};
pub use noise::{apply_poisson_noise, intensity_scale, sample_poisson};
pub use probe::{ZonePlate, disk_probe, object_pixel_size_m, wavelength_m, zone_plate_probe};
