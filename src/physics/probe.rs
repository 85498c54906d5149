//! Probes: an idealised filtered disk and a zone-plate focus propagated to a
//! defocus. Both are `[N, N]` complex64 centred on index `(N/2, N/2)` and
//! scaled to a peak amplitude of 1 (the dose fixes the absolute scale).
use std::f64::consts::PI;

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// `h·c` in eV·m: wavelength_m = HC_EV_M / energy_ev.
pub const HC_EV_M: f64 = 1.239_841_984e-6;

/// Wavelength in metres for a photon energy in eV.
pub fn wavelength_m(photon_energy_ev: f64) -> f64 {
    HC_EV_M / photon_energy_ev
}

/// Object-plane pixel size of a far-field geometry: `λ·z / (N·detector pixel)`.
pub fn object_pixel_size_m(photon_energy_ev: f64, detector_distance_m: f64, detector_pixel_size_m: f64, n: i64) -> f64 {
    wavelength_m(photon_energy_ev) * detector_distance_m / (n as f64 * detector_pixel_size_m)
}

/// Squared radius from the patch centre `(N/2, N/2)`, in pixels².
fn radius2_px(n: i64, device: Device) -> Tensor {
    let c = Tensor::arange(n, (Kind::Double, device)) - (n / 2) as f64;
    c.view([n, 1]).square() + c.view([1, n]).square()
}

/// Squared spatial frequency `|f|²` on the FFT grid (zero frequency at index 0), in 1/m².
fn freq2(n: i64, pixel_size_m: f64, device: Device) -> Tensor {
    let f = Tensor::fft_fftfreq(n, pixel_size_m, (Kind::Double, device));
    f.view([n, 1]).square() + f.view([1, n]).square()
}

fn peak_normalised(field: Tensor) -> Result<Tensor> {
    let peak = field.abs().max().double_value(&[]);
    if !(peak.is_finite() && peak > 0.0) {
        return Err(Error::value("probe", "the generated probe is zero everywhere"));
    }
    Ok((field / peak).to_kind(Kind::ComplexFloat))
}

/// An idealised probe: a disk of `radius_px` smoothed by a Gaussian of
/// `smoothing_px` (σ, pixels; 0 = hard edge), real and positive.
///
/// # Shapes
/// returns `[N, N]` complex64
pub fn disk_probe(n: i64, radius_px: f64, smoothing_px: f64, device: Device) -> Result<Tensor> {
    if !(radius_px > 0.0 && radius_px <= n as f64 / 2.0) {
        return Err(Error::config(
            "probe.radius_px",
            format!("must be in (0, N/2 = {}], got {radius_px}", n / 2),
        ));
    }
    if !(smoothing_px >= 0.0 && smoothing_px.is_finite()) {
        return Err(Error::config(
            "probe.smoothing_px",
            format!("must be ≥ 0, got {smoothing_px}"),
        ));
    }
    let disk = radius2_px(n, device).lt(radius_px * radius_px).to_kind(Kind::Double);
    // Gaussian blur as a product in Fourier space (frequencies in cycles/pixel);
    // the ifftshift/fftshift pair keeps the disk centred at (N/2, N/2).
    let gauss = (freq2(n, 1.0, device) * (-2.0 * PI * PI * smoothing_px * smoothing_px)).exp();
    let blurred = (disk
        .fft_ifftshift(None::<&[i64]>)
        .fft_fft2(None::<&[i64]>, [-2, -1], "backward")
        * gauss)
        .fft_ifft2(None::<&[i64]>, [-2, -1], "backward")
        .real()
        .fft_fftshift(None::<&[i64]>)
        .clamp_min(0.0);
    peak_normalised(Tensor::complex(&blurred, &blurred.zeros_like()))
}

/// Parameters of a zone-plate focus (units in the names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZonePlate {
    pub photon_energy_ev: f64,
    /// Object-plane pixel size.
    pub pixel_size_m: f64,
    /// Outermost zone width Δr: numerical aperture λ/(2Δr), pupil cut-off 1/(2Δr).
    pub outer_zone_width_m: f64,
    /// Central stop diameter as a fraction of the zone-plate diameter.
    pub central_stop_fraction: f64,
    /// Distance from the focus to the sample (positive: downstream).
    pub defocus_m: f64,
}

/// A structured probe: an annular pupil (zone plate with central stop)
/// focused, then propagated by `defocus_m` with the Fresnel transfer function
/// `exp(−iπλz|f|²)`.
///
/// # Shapes
/// returns `[N, N]` complex64
pub fn zone_plate_probe(n: i64, zp: &ZonePlate, device: Device) -> Result<Tensor> {
    let ZonePlate {
        photon_energy_ev,
        pixel_size_m,
        outer_zone_width_m,
        central_stop_fraction,
        defocus_m,
    } = *zp;
    for (field, v) in [
        ("geometry.photon_energy_ev", photon_energy_ev),
        ("pixel size", pixel_size_m),
        ("probe.outer_zone_width_m", outer_zone_width_m),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::config(field, format!("must be positive, got {v}")));
        }
    }
    if !(0.0..1.0).contains(&central_stop_fraction) {
        return Err(Error::config(
            "probe.central_stop_fraction",
            format!("must be in [0, 1), got {central_stop_fraction}"),
        ));
    }
    if !defocus_m.is_finite() {
        return Err(Error::config("probe.defocus_m", "must be finite"));
    }
    let f_max = 1.0 / (2.0 * outer_zone_width_m);
    let nyquist = 1.0 / (2.0 * pixel_size_m);
    if f_max > nyquist {
        return Err(Error::config(
            "probe.outer_zone_width_m",
            format!(
                "{outer_zone_width_m:.3e} m resolves finer than the object pixel \
                 ({pixel_size_m:.3e} m): the pupil would exceed the Nyquist frequency; \
                 use a zone width ≥ the pixel size"
            ),
        ));
    }
    let f2 = freq2(n, pixel_size_m, device);
    let f_stop = central_stop_fraction * f_max;
    let pupil = f2
        .le(f_max * f_max)
        .logical_and(&f2.ge(f_stop * f_stop))
        .to_kind(Kind::Double);
    let lambda = wavelength_m(photon_energy_ev);
    let phase = f2 * (-PI * lambda * defocus_m);
    let transfer = Tensor::polar(&pupil, &phase);
    let field = transfer
        .fft_ifft2(None::<&[i64]>, [-2, -1], "backward")
        .fft_fftshift(None::<&[i64]>);
    peak_normalised(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_probe_is_centred_and_symmetric() {
        let p = disk_probe(64, 16.0, 1.0, Device::Cpu).unwrap();
        let a = p.abs();
        assert!((a.double_value(&[32, 32]) - 1.0).abs() < 1e-4);
        assert!(a.double_value(&[32, 60]) < 1e-3);
        // mirror symmetry about index 32
        let d = (a.double_value(&[32, 20]) - a.double_value(&[32, 44])).abs();
        assert!(d < 1e-6, "{d}");
    }

    #[test]
    fn zone_plate_focus_is_concentrated_and_defocus_spreads_it() {
        let zp = ZonePlate {
            photon_energy_ev: 8000.0,
            pixel_size_m: 16e-9,
            outer_zone_width_m: 50e-9,
            central_stop_fraction: 0.4,
            defocus_m: 0.0,
        };
        let encircled = |p: &Tensor| {
            // fraction of the intensity within 4 px of the centre
            let i = p.abs().square().to_kind(Kind::Double);
            let inside = radius2_px(64, Device::Cpu).le(16.0).to_kind(Kind::Double);
            ((&i * inside).sum(Kind::Double) / i.sum(Kind::Double)).double_value(&[])
        };
        let focus = zone_plate_probe(64, &zp, Device::Cpu).unwrap();
        let defocused = zone_plate_probe(
            64,
            &ZonePlate {
                defocus_m: 120e-6,
                ..zp
            },
            Device::Cpu,
        )
        .unwrap();
        assert!(focus.abs().double_value(&[32, 32]) > 0.99);
        let (e_focus, e_defocus) = (encircled(&focus), encircled(&defocused));
        assert!(e_focus > 0.4 && e_defocus < 0.25, "{e_focus} vs {e_defocus}");
        // a zone width finer than the pixel is refused
        let bad = ZonePlate {
            outer_zone_width_m: 5e-9,
            ..zp
        };
        assert!(zone_plate_probe(64, &bad, Device::Cpu).is_err());
    }

    #[test]
    fn pixel_size_formula() {
        // 8 keV, 0.5 m, 75 µm, N = 64 → 1.5498e-10·0.5/(64·75e-6)
        let dx = object_pixel_size_m(8000.0, 0.5, 75e-6, 64);
        assert!((dx - 1.614_377_6e-8).abs() < 1e-14, "{dx}");
    }
}
