//! Real beamline data in the CXI format (Coherent X-ray Imaging, HDF5).
//!
//! Read: patterns from `/entry_1/data_1/data` or
//! `/entry_1/instrument_1/detector_1/data` (`[n, N, N]` intensities, any
//! numeric type), positions from `/entry_1/sample_1/geometry_1/translation`
//! (`[n, 3]` or `[n, 2]`, metres, `(x, y[, z])`), detector `distance`,
//! `x_pixel_size`, `y_pixel_size` (metres) and source `energy` (joules as
//! the CXI standard says; values above 1e-10 are taken as eV, which some
//! writers use). The probe comes from `/entry_1/instrument_1/source_1/illumination`
//! or `/entry_1/image_1/probe` when present, else it is estimated from the
//! mean pattern (a centred, real probe whose far field matches it).
//!
//! Conversions: amplitude `X = sqrt(I)` with `intensity_scale = 1` (negative
//! intensities, e.g. from background subtraction, are clipped to 0 and
//! counted); object pixel `dx = λ·z / (N·detector pixel)`; translations are
//! probe centres and become object pixels with the smallest at `N/2 + ½`.
//! All of it is listed in `metadata.data_transformations`.
use std::path::Path;

use ndarray::{Array1, Array2, Array3, Axis};
use num_complex::Complex32;
use tch::{Device, Kind, Tensor};

use super::dataset::{Dataset, Geometry, Metadata};
use super::h5util;
use crate::array::{f32_to_tensor, tensor_to_c64};
use crate::error::{Error, Result};

const DATA_PATHS: [&str; 2] = ["/entry_1/data_1/data", "/entry_1/instrument_1/detector_1/data"];
const PROBE_PATHS: [&str; 2] = ["/entry_1/instrument_1/source_1/illumination", "/entry_1/image_1/probe"];
const DETECTOR: &str = "/entry_1/instrument_1/detector_1";
const ENERGY: &str = "/entry_1/instrument_1/source_1/energy";
const TRANSLATION: &str = "/entry_1/sample_1/geometry_1/translation";
/// Electron-volt in joules.
const EV_J: f64 = 1.602_176_634e-19;

fn scalar(file: &hdf5::File, name: &str, path: &Path) -> Result<f64> {
    let (_, v) = h5util::read_real(&dataset_at(file, name, path)?, name, path)?;
    match v.as_slice() {
        [x] if x.is_finite() && *x > 0.0 => Ok(*x),
        _ => Err(Error::format(
            path,
            format!("`{name}` must be one positive number, got {v:?}"),
        )),
    }
}

fn dataset_at(file: &hdf5::File, name: &str, path: &Path) -> Result<hdf5::Dataset> {
    if !file.link_exists(name) {
        return Err(Error::format(path, format!("missing dataset `{name}`")));
    }
    file.dataset(name)
        .map_err(|e| Error::format(path, format!("`{name}` is not a dataset: {e}")))
}

/// The probe whose far-field amplitude is the mean measured amplitude:
/// `P = fftshift(IFFT2_ortho(ifftshift(sqrt(mean I))))`, real and centred.
fn probe_from_mean_pattern(mean_amplitude: &Array2<f32>) -> Result<Array2<Complex32>> {
    let a = f32_to_tensor(mean_amplitude, Device::Cpu).to_kind(Kind::ComplexFloat);
    let p: Tensor = a
        .fft_ifftshift(None::<&[i64]>)
        .fft_ifft2(None::<&[i64]>, [-2, -1], "ortho")
        .fft_fftshift(None::<&[i64]>);
    Ok(tensor_to_c64(&p)?.into_dimensionality().expect("2-D"))
}

/// Reads a CXI file into a validated [`Dataset`] (no ground-truth object).
pub fn read_cxi(path: &Path) -> Result<Dataset> {
    let file = h5util::open(path)?;
    let data_path = DATA_PATHS.iter().find(|p| file.link_exists(p)).ok_or_else(|| {
        Error::format(
            path,
            format!("no diffraction data at {} or {}", DATA_PATHS[0], DATA_PATHS[1]),
        )
    })?;
    let ds = dataset_at(&file, data_path, path)?;
    let shape = ds.shape();
    let [n, h, w]: [usize; 3] = shape
        .as_slice()
        .try_into()
        .map_err(|_| Error::format(path, format!("`{data_path}`: expected [n, N, N], got {shape:?}")))?;
    if h != w {
        return Err(Error::format(
            path,
            format!("`{data_path}`: patterns must be square, got {h}×{w}"),
        ));
    }
    let intensity = ds
        .read_raw::<f32>()
        .map_err(|e| Error::format(path, format!("`{data_path}` is not numeric: {e}")))?;
    let mut transformations = vec![format!("read CXI patterns from `{data_path}`")];
    let negatives = intensity.iter().filter(|&&v| v < 0.0).count();
    if let Some(i) = intensity.iter().position(|v| !v.is_finite()) {
        return Err(Error::format(
            path,
            format!("`{data_path}`: non-finite intensity in pattern {}", i / (h * w)),
        ));
    }
    if negatives > 0 {
        transformations.push(format!("clipped {negatives} negative intensities to 0"));
    }
    let total: f64 = intensity.iter().map(|&v| v.max(0.0) as f64).sum();
    let diffraction = Array3::from_shape_vec((n, h, w), intensity.into_iter().map(|v| v.max(0.0).sqrt()).collect())
        .expect("sizes agree");
    transformations.push("intensity → amplitude (sqrt); intensity_scale = 1".into());

    let distance = scalar(&file, &format!("{DETECTOR}/distance"), path)?;
    let px = scalar(&file, &format!("{DETECTOR}/x_pixel_size"), path)?;
    let py = scalar(&file, &format!("{DETECTOR}/y_pixel_size"), path)?;
    if ((px - py) / px).abs() > 1e-6 {
        return Err(Error::format(
            path,
            format!("detector pixels must be square, got {px} × {py} m"),
        ));
    }
    let energy_raw = scalar(&file, ENERGY, path)?;
    let photon_energy_ev = if energy_raw < 1e-10 {
        energy_raw / EV_J
    } else {
        transformations.push(format!("source energy {energy_raw} read as eV (CXI says joules)"));
        energy_raw
    };
    let geometry = Geometry {
        photon_energy_ev,
        detector_distance_m: distance,
        detector_pixel_size_m: px,
    };
    let dx = geometry.object_pixel_size_m(h);

    let (tshape, t) = h5util::read_real(&dataset_at(&file, TRANSLATION, path)?, TRANSLATION, path)?;
    let cols = match tshape.as_slice() {
        [m, c] if *m == n && (*c == 2 || *c == 3) => *c,
        _ => {
            return Err(Error::format(
                path,
                format!("`{TRANSLATION}`: expected [{n}, 3] metres, got {tshape:?}"),
            ));
        }
    };
    let xs: Vec<f64> = t.iter().step_by(cols).copied().collect();
    let ys: Vec<f64> = t.iter().skip(1).step_by(cols).copied().collect();
    let min = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    let (x0, y0) = (min(&xs), min(&ys));
    let half = (h / 2) as f64;
    let to_px = |v: f64, v0: f64| (v - v0) / dx + half + 0.5;
    let positions_px = ndarray::stack(
        Axis(1),
        &[
            Array1::from_iter(xs.iter().map(|&v| to_px(v, x0))).view(),
            Array1::from_iter(ys.iter().map(|&v| to_px(v, y0))).view(),
        ],
    )
    .expect("same length");
    transformations.push(format!("translations (m) → object pixels, dx = {dx:.4e} m"));

    let probe = match PROBE_PATHS.iter().find(|p| file.link_exists(p)) {
        Some(p) => {
            let (s, v) = h5util::read_complex(&dataset_at(&file, p, path)?, p, path)?;
            let s2: Vec<usize> = s.iter().copied().filter(|&d| d != 1).collect();
            if s2 != [h, w] {
                return Err(Error::format(
                    path,
                    format!("`{p}`: expected a [{h}, {w}] probe, got {s:?}"),
                ));
            }
            transformations.push(format!("probe from `{p}`"));
            Array2::from_shape_vec((h, w), v).expect("sizes agree")
        }
        None => {
            transformations.push("probe estimated from the mean pattern (no probe in the file)".into());
            probe_from_mean_pattern(
                &diffraction
                    .mapv(|a| a * a)
                    .mean_axis(Axis(0))
                    .expect("n > 0")
                    .mapv(f32::sqrt),
            )?
        }
    };
    let ds = Dataset {
        diffraction,
        start_positions_px: positions_px.clone(),
        positions_px,
        scan_index: Array1::zeros(n),
        probe,
        extra_probe_modes: None,
        true_positions_px: None,
        object: None,
        patches: None,
        metadata: Metadata {
            n_photons: Some(total / n as f64),
            intensity_scale: Some(1.0),
            generator: Some(format!("CXI file {}", path.display())),
            geometry: Some(geometry),
            data_transformations: transformations,
            ..Metadata::default()
        },
    };
    ds.validate().map_err(|e| Error::format(path, e.to_string()))?;
    Ok(ds)
}
