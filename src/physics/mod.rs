//! The physics of far-field ptychography, on `tch` tensors (CPU or GPU).
//! No file IO and no printing here (ARCHITECTURE.md, invariants).

/// Defines `fn NAME(args)` whose body is compiled twice, plainly and for
/// AVX2 + FMA, the second chosen at run time where the CPU has both. The
/// body is inlined into each copy, so its loops are vectorised for the
/// wider registers; Rust never fuses `a * b + c` on its own, so both copies
/// give the same bits.
macro_rules! simd_dispatch {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn plain($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) {
                plain($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA, checked just above.
                return unsafe { avx2($($arg),*) };
            }
            plain($($arg),*)
        }
    };
}

pub mod forward;
pub mod host;
pub mod illumination;
pub mod noise;
pub mod object;
pub mod probe;
pub mod scan;
pub mod shift;

pub use forward::{exit_waves, extract_patches, far_field_amplitude, far_field_intensity};
pub use illumination::{illuminated, illuminated_mask, illumination_counts, probe_support, redundancy};
pub use noise::{intensity_scale, noisy_amplitude_from_intensity, pattern_rng, sample_poisson};
pub use probe::{ZonePlate, disk_probe, object_pixel_size_m, wavelength_m, zone_plate_probe};
pub use shift::{translate, translate_channels, translate_channels_exact, translate_crops};
