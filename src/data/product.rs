//! Ptychodus HDF5 product (DESIGN §4): what hands a reconstruction to
//! Ptychodus. We write the union of the 1.7 and older key sets (extra keys are
//! ignored by both), complex data as `{r, i}` compounds, positions in metres
//! as probe centres with the object centre at 0.
//!
//! Pixel ↔ metre: the probe centre of a position `x` (DESIGN §3) is at pixel
//! `x − ½`; `x_m = (x − ½ − (W−1)/2)·pixel_width_m + center_x_m`.
use std::path::Path;

use ndarray::{Array1, Array2, Array3, Array4, Ix2};
use num_complex::Complex32;

use super::atomic::write_via_temp_path;
use super::dataset::{Dataset, Geometry};
use super::h5util::{self, ComplexRI};
use crate::error::{Error, Result};

/// File keys (named constants, as Ptychodus names them).
pub mod keys {
    pub const NAME: &str = "name";
    pub const COMMENTS: &str = "comments";
    pub const DETECTOR_OBJECT_DISTANCE_M: &str = "detector_object_distance_m";
    pub const PHOTON_ENERGY_EV: &str = "photon_energy_eV";
    pub const PROBE_ENERGY_EV_LEGACY: &str = "probe_energy_eV";
    pub const EXPOSURE_TIME_S: &str = "exposure_time_s";
    pub const PROBE_PHOTON_COUNT: &str = "probe_photon_count";
    pub const MASS_ATTENUATION_M2_PER_KG: &str = "mass_attenuation_m2_per_kg";
    pub const TOMOGRAPHY_ANGLE_DEG: &str = "tomography_angle_deg";
    pub const PROBE: &str = "probe";
    pub const OBJECT: &str = "object";
    pub const PIXEL_WIDTH_M: &str = "pixel_width_m";
    pub const PIXEL_HEIGHT_M: &str = "pixel_height_m";
    pub const CENTER_X_M: &str = "center_x_m";
    pub const CENTER_Y_M: &str = "center_y_m";
    pub const POSITION_INDEXES: &str = "probe_position_indexes";
    pub const POSITION_X_M: &str = "probe_position_x_m";
    pub const POSITION_Y_M: &str = "probe_position_y_m";
    pub const LAYER_SPACING_M: &str = "object_layer_spacing_m";
    pub const LOSS_VALUES: &str = "loss_values";
    pub const LOSS_EPOCHS: &str = "loss_epochs";
}

/// A reconstruction product: object, probe and positions in physical units.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub name: String,
    pub comments: String,
    pub detector_distance_m: f64,
    pub photon_energy_ev: f64,
    pub exposure_time_s: f64,
    pub probe_photon_count: f64,
    pub mass_attenuation_m2_per_kg: f64,
    pub tomography_angle_deg: f64,
    /// `[layers, H, W]`.
    pub object: Array3<Complex32>,
    pub object_center_m: [f64; 2],
    /// `(width, height)` of an object pixel.
    pub object_pixel_size_m: [f64; 2],
    /// `[opr, modes, N, N]`.
    pub probe: Array4<Complex32>,
    pub probe_pixel_size_m: [f64; 2],
    pub position_indexes: Array1<i64>,
    /// Probe-centre positions `(x, y)` in metres.
    pub positions_m: Array2<f64>,
    pub loss_values: Vec<f64>,
    pub loss_epochs: Vec<i64>,
}

/// Object canvas `[H, W]` that holds every patch of a dataset without a
/// ground-truth object: `x + N/2 ≤ W` for every position.
pub fn canvas_shape(positions_px: &Array2<f64>, n: usize) -> [usize; 2] {
    let max = |c: usize| positions_px.column(c).iter().cloned().fold(0.0, f64::max);
    let half = (n / 2) as f64;
    [(max(1) + half).ceil() as usize, (max(0) + half).ceil() as usize]
}

impl Product {
    /// The product of a dataset with an object: `object` if given (a
    /// reconstruction), else the dataset's ground truth, else ones. Needs the
    /// dataset's geometry (metres); a dataset without one is an error.
    pub fn from_dataset(dataset: &Dataset, object: Option<&Array2<Complex32>>, name: &str) -> Result<Product> {
        let geometry: Geometry = dataset.metadata.geometry.ok_or_else(|| {
            Error::value(
                "dataset",
                "has no geometry (photon energy, detector distance and pixel size) to express positions in metres",
            )
        })?;
        let n = dataset.patch_size();
        let dx = geometry.object_pixel_size_m(n);
        let object = match (object, &dataset.object) {
            (Some(o), _) | (None, Some(o)) => o.clone(),
            (None, None) => {
                let [h, w] = canvas_shape(&dataset.positions_px, n);
                Array2::from_elem((h, w), Complex32::new(1.0, 0.0))
            }
        };
        let (h, w) = (object.shape()[0] as f64, object.shape()[1] as f64);
        let mut positions_m = dataset.positions_px.clone();
        for mut p in positions_m.outer_iter_mut() {
            p[0] = (p[0] - 0.5 - (w - 1.0) / 2.0) * dx;
            p[1] = (p[1] - 0.5 - (h - 1.0) / 2.0) * dx;
        }
        let probe = dataset
            .probe
            .clone()
            .into_shape_with_order((1, 1, n, n))
            .expect("probe is [N, N]");
        Ok(Product {
            name: name.to_string(),
            comments: format!("written by ptycho-workbench {}", env!("CARGO_PKG_VERSION")),
            detector_distance_m: geometry.detector_distance_m,
            photon_energy_ev: geometry.photon_energy_ev,
            exposure_time_s: 0.0,
            probe_photon_count: dataset.metadata.n_photons.unwrap_or(0.0),
            mass_attenuation_m2_per_kg: 0.0,
            tomography_angle_deg: 0.0,
            object: object.insert_axis(ndarray::Axis(0)),
            object_center_m: [0.0, 0.0],
            object_pixel_size_m: [dx, dx],
            probe,
            probe_pixel_size_m: [dx, dx],
            position_indexes: Array1::from_iter(0..dataset.n_images() as i64),
            positions_m,
            loss_values: Vec::new(),
            loss_epochs: Vec::new(),
        })
    }

    /// Positions in our object-pixel convention (DESIGN §3), `[n, 2]` `(x, y)`.
    pub fn positions_px(&self) -> Array2<f64> {
        let (h, w) = (self.object.shape()[1] as f64, self.object.shape()[2] as f64);
        let mut out = self.positions_m.clone();
        for mut p in out.outer_iter_mut() {
            p[0] = (p[0] - self.object_center_m[0]) / self.object_pixel_size_m[0] + (w - 1.0) / 2.0 + 0.5;
            p[1] = (p[1] - self.object_center_m[1]) / self.object_pixel_size_m[1] + (h - 1.0) / 2.0 + 0.5;
        }
        out
    }

    /// The first object layer, `[H, W]`.
    pub fn object_2d(&self) -> Array2<Complex32> {
        self.object.index_axis(ndarray::Axis(0), 0).to_owned()
    }
}

fn complex_dataset<D: ndarray::Dimension>(
    file: &hdf5::File,
    name: &str,
    data: &ndarray::Array<Complex32, D>,
    path: &Path,
) -> Result<hdf5::Dataset> {
    let ri = data.mapv(ComplexRI::from);
    file.new_dataset_builder()
        .with_data(ri.view())
        .create(name)
        .map_err(|e| Error::hdf5(path, e))
}

fn real_dataset<T: hdf5::H5Type>(file: &hdf5::File, name: &str, data: &[T], path: &Path) -> Result<()> {
    file.new_dataset_builder()
        .with_data(data)
        .create(name)
        .map(|_| ())
        .map_err(|e| Error::hdf5(path, e))
}

/// Writes a product file atomically.
pub fn write_product(product: &Product, path: &Path) -> Result<()> {
    use keys::*;
    write_via_temp_path(path, |tmp| {
        let file = hdf5::File::create(tmp).map_err(|e| Error::hdf5(path, e))?;
        h5util::attr_str(&file, NAME, &product.name, path)?;
        h5util::attr_str(&file, COMMENTS, &product.comments, path)?;
        for (k, v) in [
            (DETECTOR_OBJECT_DISTANCE_M, product.detector_distance_m),
            (PHOTON_ENERGY_EV, product.photon_energy_ev),
            (PROBE_ENERGY_EV_LEGACY, product.photon_energy_ev),
            (EXPOSURE_TIME_S, product.exposure_time_s),
            (PROBE_PHOTON_COUNT, product.probe_photon_count),
            (MASS_ATTENUATION_M2_PER_KG, product.mass_attenuation_m2_per_kg),
            (TOMOGRAPHY_ANGLE_DEG, product.tomography_angle_deg),
        ] {
            h5util::attr_f64(&file, k, v, path)?;
        }
        let probe = complex_dataset(&file, PROBE, &product.probe, path)?;
        h5util::attr_f64(&probe, PIXEL_WIDTH_M, product.probe_pixel_size_m[0], path)?;
        h5util::attr_f64(&probe, PIXEL_HEIGHT_M, product.probe_pixel_size_m[1], path)?;
        let object = complex_dataset(&file, OBJECT, &product.object, path)?;
        h5util::attr_f64(&object, CENTER_X_M, product.object_center_m[0], path)?;
        h5util::attr_f64(&object, CENTER_Y_M, product.object_center_m[1], path)?;
        h5util::attr_f64(&object, PIXEL_WIDTH_M, product.object_pixel_size_m[0], path)?;
        h5util::attr_f64(&object, PIXEL_HEIGHT_M, product.object_pixel_size_m[1], path)?;
        real_dataset(
            &file,
            POSITION_INDEXES,
            product.position_indexes.as_slice().expect("contiguous"),
            path,
        )?;
        real_dataset(&file, POSITION_X_M, &product.positions_m.column(0).to_vec(), path)?;
        real_dataset(&file, POSITION_Y_M, &product.positions_m.column(1).to_vec(), path)?;
        let layers = product.object.shape()[0];
        real_dataset(&file, LAYER_SPACING_M, &vec![0.0f64; layers.saturating_sub(1)], path)?;
        real_dataset(&file, LOSS_VALUES, &product.loss_values, path)?;
        real_dataset(&file, LOSS_EPOCHS, &product.loss_epochs, path)?;
        file.close().map_err(|e| Error::hdf5(path, e))
    })
}

fn dims<const K: usize>(shape: &[usize], what: &str, expected: &str, path: &Path) -> Result<[usize; K]> {
    shape
        .try_into()
        .map_err(|_| Error::format(path, format!("`{what}`: expected {expected}, got shape {shape:?}")))
}

/// Reads a product file (Ptychodus 1.7 or older key names).
pub fn read_product(path: &Path) -> Result<Product> {
    use keys::*;
    let file = h5util::open(path)?;
    let need =
        |name: &str, v: Option<f64>| v.ok_or_else(|| Error::format(path, format!("missing root attribute `{name}`")));
    let detector_distance_m = need(
        DETECTOR_OBJECT_DISTANCE_M,
        h5util::read_attr_f64(&file, DETECTOR_OBJECT_DISTANCE_M, path)?,
    )?;
    let photon_energy_ev = match h5util::read_attr_f64(&file, PHOTON_ENERGY_EV, path)? {
        Some(v) => v,
        None => need(
            PHOTON_ENERGY_EV,
            h5util::read_attr_f64(&file, PROBE_ENERGY_EV_LEGACY, path)?,
        )?,
    };
    let opt = |k: &str| h5util::read_attr_f64(&file, k, path).map(|v| v.unwrap_or(0.0));

    let ods = h5util::dataset(&file, OBJECT, path)?;
    let (oshape, ovals) = h5util::read_complex(&ods, OBJECT, path)?;
    let object = match oshape.len() {
        2 => Array3::from_shape_vec((1, oshape[0], oshape[1]), ovals),
        3 => Array3::from_shape_vec((oshape[0], oshape[1], oshape[2]), ovals),
        _ => {
            return Err(Error::format(
                path,
                format!("`object`: expected [H, W] or [layers, H, W], got {oshape:?}"),
            ));
        }
    }
    .expect("sizes agree");
    let oattr = |k: &str| -> Result<f64> {
        h5util::read_attr_f64(&ods, k, path)?
            .ok_or_else(|| Error::format(path, format!("`object` has no attribute `{k}`")))
    };
    let object_center_m = [oattr(CENTER_X_M)?, oattr(CENTER_Y_M)?];
    let object_pixel_size_m = [oattr(PIXEL_WIDTH_M)?, oattr(PIXEL_HEIGHT_M)?];

    let pds = h5util::dataset(&file, PROBE, path)?;
    let (pshape, pvals) = h5util::read_complex(&pds, PROBE, path)?;
    let p4 = match pshape.len() {
        2 => [1, 1, pshape[0], pshape[1]],
        3 => [1, pshape[0], pshape[1], pshape[2]],
        _ => dims::<4>(&pshape, PROBE, "a 2-, 3- or 4-D probe", path)?,
    };
    let probe = Array4::from_shape_vec(p4, pvals).expect("sizes agree");
    let probe_pixel_size_m = [
        h5util::read_attr_f64(&pds, PIXEL_WIDTH_M, path)?.unwrap_or(object_pixel_size_m[0]),
        h5util::read_attr_f64(&pds, PIXEL_HEIGHT_M, path)?.unwrap_or(object_pixel_size_m[1]),
    ];

    let (_, x) = h5util::read_real(&h5util::dataset(&file, POSITION_X_M, path)?, POSITION_X_M, path)?;
    let (_, y) = h5util::read_real(&h5util::dataset(&file, POSITION_Y_M, path)?, POSITION_Y_M, path)?;
    let (_, idx) = h5util::read_real(&h5util::dataset(&file, POSITION_INDEXES, path)?, POSITION_INDEXES, path)?;
    if x.len() != y.len() || x.len() != idx.len() {
        return Err(Error::format(
            path,
            format!(
                "position arrays differ in length: x {}, y {}, indexes {}",
                x.len(),
                y.len(),
                idx.len()
            ),
        ));
    }
    let positions_m =
        ndarray::stack(ndarray::Axis(1), &[Array1::from(x).view(), Array1::from(y).view()]).expect("same length");
    let read_opt = |k: &str| -> Result<Vec<f64>> {
        if file.link_exists(k) {
            Ok(h5util::read_real(&h5util::dataset(&file, k, path)?, k, path)?.1)
        } else {
            Ok(Vec::new())
        }
    };
    let loss_values = read_opt(LOSS_VALUES)?;
    let loss_epochs = read_opt(LOSS_EPOCHS)?.into_iter().map(|v| v as i64).collect();
    Ok(Product {
        name: h5util::read_attr_string(&file, NAME, path)?.unwrap_or_else(|| "Unnamed".into()),
        comments: h5util::read_attr_string(&file, COMMENTS, path)?.unwrap_or_default(),
        detector_distance_m,
        photon_energy_ev,
        exposure_time_s: opt(EXPOSURE_TIME_S)?,
        probe_photon_count: opt(PROBE_PHOTON_COUNT)?,
        mass_attenuation_m2_per_kg: opt(MASS_ATTENUATION_M2_PER_KG)?,
        tomography_angle_deg: opt(TOMOGRAPHY_ANGLE_DEG)?,
        object,
        object_center_m,
        object_pixel_size_m,
        probe,
        probe_pixel_size_m,
        position_indexes: Array1::from_iter(idx.into_iter().map(|v| v as i64)),
        positions_m,
        loss_values,
        loss_epochs,
    })
}

/// Reads the `object` array (complex64 `[H, W]`) of a reconstruction NPZ
/// (`object`, or `objectGuess` for a dataset file).
pub fn read_recon_object(path: &Path) -> Result<Array2<Complex32>> {
    read_recon(path).map(|r| r.0)
}

/// [`read_recon_object`] and the `source` our `_metadata` records (`"pinn
/// inference"`, `"iterative epie"`, …); `None` for a file written by
/// another tool, or whose `_metadata` is not our JSON.
pub fn read_recon(path: &Path) -> Result<(Array2<Complex32>, Option<String>)> {
    let r = read_recon_file(path)?;
    Ok((r.object, r.source))
}

/// What a reconstruction NPZ holds (ours or another tool's).
#[derive(Debug, Clone, PartialEq)]
pub struct ReconFile {
    /// `object` (or `objectGuess`), complex64 `[H, W]`.
    pub object: Array2<Complex32>,
    /// `coverage` (float32 `[H, W]`, ours), when present.
    pub coverage: Option<Array2<f32>>,
    /// `probe` or `probeGuess` (complex64 `[N, N]`), when present.
    pub probe: Option<Array2<Complex32>>,
    /// Our `_metadata`'s `source`.
    pub source: Option<String>,
}

/// Reads [`ReconFile`]: the object is required; coverage and probe are
/// read when present (and must then have the right dtype and rank).
pub fn read_recon_file(path: &Path) -> Result<ReconFile> {
    let mut object = None;
    let mut source = None;
    let mut coverage = None;
    let mut probe = None;
    let two_d = |key: &str, shape: &[usize]| -> Result<(usize, usize)> {
        match shape {
            [h, w] => Ok((*h, *w)),
            _ => Err(Error::format(path, format!("`{key}`: expected [H, W], got {shape:?}"))),
        }
    };
    for (key, arr) in super::npy::read_npz(path)? {
        if key == "coverage" {
            let a = arr?;
            let dim = two_d(&key, &a.shape)?;
            let v = match a.data {
                super::npy::NpyData::F32(v) => v,
                other => {
                    return Err(Error::format(
                        path,
                        format!("`coverage` has dtype {}, expected float32", other.dtype_name()),
                    ));
                }
            };
            coverage = Some(Array2::from_shape_vec(dim, v).map_err(|e| Error::format(path, e.to_string()))?);
            continue;
        }
        if probe.is_none() && (key == "probe" || key == "probeGuess") {
            let a = arr?;
            let dim = two_d(&key, &a.shape)?;
            let v = match a.data {
                super::npy::NpyData::C64(v) => v,
                other => {
                    return Err(Error::format(
                        path,
                        format!("`{key}` has dtype {}, expected complex64", other.dtype_name()),
                    ));
                }
            };
            probe = Some(Array2::from_shape_vec(dim, v).map_err(|e| Error::format(path, e.to_string()))?);
            continue;
        }
        if key == "_metadata" {
            if let Ok(super::npy::NpyArray {
                data: super::npy::NpyData::Str(s),
                ..
            }) = arr
            {
                source = s
                    .first()
                    .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
                    .and_then(|v| v.get("source")?.as_str().map(str::to_owned));
            }
            continue;
        }
        if object.is_none() && (key == "object" || key == "objectGuess") {
            let a = arr?;
            let v = match a.data {
                super::npy::NpyData::C64(v) => v,
                other => {
                    return Err(Error::format(
                        path,
                        format!("`{key}` has dtype {}, expected complex64", other.dtype_name()),
                    ));
                }
            };
            object = Some(
                ndarray::ArrayD::from_shape_vec(a.shape.clone(), v)
                    .ok()
                    .and_then(|a| a.into_dimensionality::<Ix2>().ok())
                    .ok_or_else(|| Error::format(path, format!("`{key}`: expected [H, W], got {:?}", a.shape)))?,
            );
        }
    }
    let object = object.ok_or_else(|| Error::format(path, "missing key `object`"))?;
    if let Some(c) = &coverage
        && c.dim() != object.dim()
    {
        return Err(Error::format(
            path,
            format!("`coverage` is {:?}, the object {:?}", c.shape(), object.shape()),
        ));
    }
    Ok(ReconFile {
        object,
        coverage,
        probe,
        source,
    })
}
