//! PtychoPINN dataset NPZ (DESIGN §4): read and write.
//!
//! Written keys, in order: `diffraction` (float32 `[n, N, N]` amplitude),
//! `xcoords`, `ycoords`, `xcoords_start`, `ycoords_start` (float64 `[n]`),
//! `probeGuess` (complex64 `[N, N]`), `objectGuess` (complex64 `[H, W]`, when
//! known), `scan_index` (int64 `[n]`), `Y` (complex64 `[n, N, N]`, when
//! stored) and `_metadata` (0-d unicode JSON, see [`MetadataFileV1`]).
//!
//! Read also: legacy `diff3d`, the `[N, N, n]` layout, a trailing singleton
//! axis, integer intensities (converted to amplitude), float64 arrays, and a
//! `_metadata` from PtychoPINN (`nphotons`). Anything converted is listed in
//! `metadata.data_transformations`.
use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array1, Array2, Array3, Axis, Ix2, Ix3};
use num_complex::Complex32;
use serde::{Deserialize, Serialize};

use super::atomic::write_atomic;
use super::dataset::{Dataset, Geometry, Metadata};
use super::npy::{self, NpyArray, NpyData};
use crate::error::{Error, Result};

/// The `_metadata` JSON as stored on disk (its own versioned type).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataFileV1 {
    pub format: String,
    pub format_version: u32,
    pub n_photons: Option<f64>,
    /// Same as `n_photons`; the name PtychoPINN reads.
    pub nphotons: Option<f64>,
    pub intensity_scale: Option<f64>,
    pub seed: Option<u64>,
    pub generator: Option<String>,
    pub generator_config: Option<serde_json::Value>,
    pub geometry: Option<Geometry>,
    pub data_transformations: Vec<String>,
    pub units: serde_json::Value,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Format name written in `_metadata.format`.
pub const DATASET_FORMAT: &str = "ptycho-workbench/dataset";

fn metadata_to_file(m: &Metadata) -> MetadataFileV1 {
    MetadataFileV1 {
        format: DATASET_FORMAT.into(),
        format_version: 1,
        n_photons: m.n_photons,
        nphotons: m.n_photons,
        intensity_scale: m.intensity_scale,
        seed: m.seed,
        generator: m.generator.clone(),
        generator_config: m.generator_config.clone(),
        geometry: m.geometry,
        data_transformations: m.data_transformations.clone(),
        units: serde_json::json!({
            "diffraction": "amplitude X; counts = (intensity_scale·X)²; zero frequency at (N/2, N/2)",
            "xcoords": "object pixels, x = column; names the object point at patch index (N/2, N/2)",
            "ycoords": "object pixels, y = row",
        }),
        extra: m.extra.clone(),
    }
}

fn metadata_from_json(text: &str) -> std::result::Result<Metadata, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let serde_json::Value::Object(mut map) = v else {
        return Err("not a JSON object".into());
    };
    let f64_of = |map: &mut serde_json::Map<_, _>, k: &str| map.remove(k).and_then(|v: serde_json::Value| v.as_f64());
    let n1 = f64_of(&mut map, "n_photons");
    let n2 = f64_of(&mut map, "nphotons");
    let mut m = Metadata {
        n_photons: n1.or(n2),
        intensity_scale: f64_of(&mut map, "intensity_scale"),
        seed: map.remove("seed").and_then(|v| v.as_u64()),
        generator: map.remove("generator").and_then(|v| v.as_str().map(String::from)),
        generator_config: map.remove("generator_config").filter(|v| !v.is_null()),
        geometry: map.remove("geometry").and_then(|v| serde_json::from_value(v).ok()),
        ..Metadata::default()
    };
    if let Some(serde_json::Value::Array(t)) = map.remove("data_transformations") {
        m.data_transformations = t
            .into_iter()
            .map(|x| x.as_str().map(String::from).unwrap_or_else(|| x.to_string()))
            .collect();
    }
    for k in ["format", "format_version", "units"] {
        map.remove(k);
    }
    m.extra = map;
    Ok(m)
}

/// Writes `dataset` as a PtychoPINN NPZ, atomically. Same dataset → same bytes.
pub fn write_npz(dataset: &Dataset, path: &Path) -> Result<()> {
    dataset
        .validate()
        .map_err(|e| Error::format(path, format!("refusing to write an invalid dataset: {e}")))?;
    let d = dataset.diffraction.as_standard_layout();
    let n = dataset.n_images();
    let col = |a: &Array2<f64>, c: usize| a.column(c).to_vec();
    let mut members: Vec<(&str, Vec<u8>)> = vec![
        (
            "diffraction",
            npy::encode(d.shape(), d.as_slice().expect("standard layout")),
        ),
        ("xcoords", npy::encode(&[n], &col(&dataset.positions_px, 0))),
        ("ycoords", npy::encode(&[n], &col(&dataset.positions_px, 1))),
        ("xcoords_start", npy::encode(&[n], &col(&dataset.start_positions_px, 0))),
        ("ycoords_start", npy::encode(&[n], &col(&dataset.start_positions_px, 1))),
        (
            "probeGuess",
            npy::encode(
                dataset.probe.shape(),
                &dataset.probe.as_standard_layout().iter().copied().collect::<Vec<_>>(),
            ),
        ),
    ];
    if dataset.extra_probe_modes.is_some() {
        let modes = dataset.probe_modes();
        members.push((
            "probe_modes",
            npy::encode(modes.shape(), &modes.iter().copied().collect::<Vec<_>>()),
        ));
    }
    if let Some(t) = &dataset.true_positions_px {
        members.push(("xcoords_truth", npy::encode(&[n], &col(t, 0))));
        members.push(("ycoords_truth", npy::encode(&[n], &col(t, 1))));
    }
    if let Some(o) = &dataset.object {
        members.push((
            "objectGuess",
            npy::encode(o.shape(), &o.iter().copied().collect::<Vec<_>>()),
        ));
    }
    members.push(("scan_index", npy::encode(&[n], &dataset.scan_index.to_vec())));
    if let Some(y) = &dataset.patches {
        members.push(("Y", npy::encode(y.shape(), &y.iter().copied().collect::<Vec<_>>())));
    }
    let meta = serde_json::to_string(&metadata_to_file(&dataset.metadata)).expect("metadata serialises");
    members.push(("_metadata", npy::encode_str(&meta)));
    write_atomic(path, |w| {
        npy::write_npz(std::io::Cursor::new(Vec::new()), &members)
            .and_then(|c| std::io::Write::write_all(w, &c.into_inner()))
            .map_err(|e| Error::io(path, e))
    })
}

struct Members<'a> {
    path: &'a Path,
    map: HashMap<String, NpyArray>,
}

impl Members<'_> {
    fn take(&mut self, key: &str) -> Option<NpyArray> {
        self.map.remove(key)
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        Error::format(self.path, reason)
    }

    fn real_1d(&mut self, key: &str, n: usize) -> Result<Option<Array1<f64>>> {
        let Some(a) = self.take(key) else { return Ok(None) };
        let v = a.data.to_f64().ok_or_else(|| {
            self.err(format!(
                "`{key}` has dtype {}, expected a real number type",
                a.data.dtype_name()
            ))
        })?;
        if a.shape != [n] {
            return Err(self.err(format!(
                "`{key}`: expected shape [{n}] (one per pattern), got {:?}",
                a.shape
            )));
        }
        Ok(Some(Array1::from(v)))
    }

    fn complex(&mut self, key: &str) -> Result<Option<(Vec<usize>, Vec<Complex32>)>> {
        let Some(a) = self.take(key) else { return Ok(None) };
        let v = match a.data.into_complex32() {
            Ok(v) => v,
            Err(other) => match other.to_f64() {
                Some(r) => r.into_iter().map(|x| Complex32::new(x as f32, 0.0)).collect(),
                None => return Err(self.err(format!("`{key}` has dtype {}, expected complex64", other.dtype_name()))),
            },
        };
        Ok(Some((a.shape, v)))
    }
}

/// Reads a PtychoPINN-style NPZ into a validated [`Dataset`].
pub fn read_npz(path: &Path) -> Result<Dataset> {
    let mut map = HashMap::new();
    let mut metadata_problem = None;
    for (key, arr) in npy::read_npz(path)? {
        match arr {
            Ok(a) => {
                map.insert(key, a);
            }
            Err(e) if key == "_metadata" => metadata_problem = Some(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    let mut m = Members { path, map };
    let mut metadata = match m.take("_metadata") {
        Some(NpyArray {
            data: NpyData::Str(s), ..
        }) if s.len() == 1 => {
            metadata_from_json(&s[0]).map_err(|e| m.err(format!("`_metadata` is unreadable: {e}")))?
        }
        Some(other) => {
            let mut md = Metadata::default();
            md.data_transformations
                .push(format!("ignored `_metadata` of dtype {}", other.data.dtype_name()));
            md
        }
        None => Metadata::default(),
    };
    if let Some(p) = metadata_problem {
        metadata.data_transformations.push(format!("ignored `_metadata`: {p}"));
    }

    let (key, raw) = match (m.take("diffraction"), m.take("diff3d")) {
        (Some(a), _) => ("diffraction", a),
        (None, Some(a)) => ("diff3d", a),
        (None, None) => return Err(m.err("missing key `diffraction` (or legacy `diff3d`)")),
    };
    if key == "diff3d" {
        metadata
            .data_transformations
            .push("read legacy key `diff3d` as `diffraction`".into());
    }
    let xcoords_len = m.map.get("xcoords").map(|a| a.shape.iter().product::<usize>());
    let is_integer = raw.data.is_integer();
    let dtype = raw.data.dtype_name();
    let values: Vec<f32> = match raw.data {
        NpyData::F32(v) => v,
        NpyData::F64(v) => {
            metadata.data_transformations.push(format!("`{key}` float64 → float32"));
            v.into_iter().map(|x| x as f32).collect()
        }
        other if other.is_integer() => other
            .to_f64()
            .expect("integers convert")
            .into_iter()
            .map(|x| x as f32)
            .collect(),
        other => {
            return Err(m.err(format!(
                "`{key}` has dtype {}, expected float32 amplitudes (or integer intensities)",
                other.dtype_name()
            )));
        }
    };
    let mut shape = raw.shape.clone();
    if shape.len() == 4 && shape[3] == 1 {
        shape.pop();
    }
    if shape.len() != 3 {
        return Err(m.err(format!(
            "`{key}`: expected a 3-D array [n, N, N], got shape {:?}",
            raw.shape
        )));
    }
    let mut diffraction = Array3::from_shape_vec((shape[0], shape[1], shape[2]), values).expect("sizes agree");
    // legacy [N, N, n]: the last axis counts patterns
    let n_guess = xcoords_len.unwrap_or(shape[0]);
    if shape[0] != n_guess && shape[2] == n_guess && shape[0] == shape[1] {
        diffraction = diffraction.permuted_axes([2, 0, 1]).as_standard_layout().to_owned();
        metadata
            .data_transformations
            .push(format!("`{key}` layout [N, N, n] → [n, N, N]"));
    }
    if is_integer {
        let n = diffraction.shape()[0] as f64;
        let total: f64 = diffraction.iter().map(|&x| x as f64).sum();
        if diffraction.iter().any(|&x| x < 0.0) {
            return Err(m.err(format!("`{key}`: negative intensity in integer data")));
        }
        diffraction.mapv_inplace(f32::sqrt);
        metadata.data_transformations.push(format!(
            "`{key}` {dtype} intensity → amplitude (sqrt); intensity_scale = 1"
        ));
        metadata.intensity_scale.get_or_insert(1.0);
        metadata.n_photons.get_or_insert(total / n);
    }
    let n = diffraction.shape()[0];
    let big_n = diffraction.shape()[1];

    let x = m.real_1d("xcoords", n)?.ok_or_else(|| m.err("missing key `xcoords`"))?;
    let y = m.real_1d("ycoords", n)?.ok_or_else(|| m.err("missing key `ycoords`"))?;
    let xs = m.real_1d("xcoords_start", n)?.unwrap_or_else(|| x.clone());
    let ys = m.real_1d("ycoords_start", n)?.unwrap_or_else(|| y.clone());
    let stack = |a: &Array1<f64>, b: &Array1<f64>| ndarray::stack(Axis(1), &[a.view(), b.view()]).expect("same length");
    let scan_index = match m.take("scan_index") {
        None => Array1::zeros(n),
        Some(a) if a.data.is_integer() && a.shape == [n] => Array1::from(
            a.data
                .to_f64()
                .expect("integers")
                .into_iter()
                .map(|v| v as i64)
                .collect::<Vec<_>>(),
        ),
        Some(a) => {
            return Err(m.err(format!(
                "`scan_index`: expected integers of shape [{n}], got {} {:?}",
                a.data.dtype_name(),
                a.shape
            )));
        }
    };
    let (pshape, pvals) = m
        .complex("probeGuess")?
        .ok_or_else(|| m.err("missing key `probeGuess`"))?;
    let probe = ndarray::ArrayD::from_shape_vec(pshape.clone(), pvals)
        .ok()
        .and_then(|a| a.into_dimensionality::<Ix2>().ok())
        .ok_or_else(|| {
            m.err(format!(
                "`probeGuess`: expected shape [{big_n}, {big_n}], got {pshape:?}"
            ))
        })?;
    // a mixed-state probe: every mode in `probe_modes` [K, N, N], the first
    // also in `probeGuess` (what PtychoPINN reads)
    let extra_probe_modes = match m.complex("probe_modes")? {
        None => None,
        Some((s, v)) => {
            let modes = ndarray::ArrayD::from_shape_vec(s.clone(), v)
                .ok()
                .and_then(|a| a.into_dimensionality::<Ix3>().ok())
                .filter(|a| a.shape()[1..] == [big_n, big_n] && a.shape()[0] >= 1)
                .ok_or_else(|| {
                    m.err(format!(
                        "`probe_modes`: expected [K, {big_n}, {big_n}], got shape {s:?}"
                    ))
                })?;
            if modes.index_axis(Axis(0), 0) != probe {
                return Err(m.err("`probe_modes`: its first mode differs from `probeGuess`"));
            }
            (modes.shape()[0] > 1).then(|| modes.slice(ndarray::s![1.., .., ..]).to_owned())
        }
    };
    let true_positions_px = match (m.real_1d("xcoords_truth", n)?, m.real_1d("ycoords_truth", n)?) {
        (Some(tx), Some(ty)) => Some(stack(&tx, &ty)),
        (None, None) => None,
        _ => return Err(m.err("`xcoords_truth` and `ycoords_truth` come together")),
    };
    let object = match m.complex("objectGuess")? {
        None => None,
        Some((s, v)) => Some(
            ndarray::ArrayD::from_shape_vec(s.clone(), v)
                .ok()
                .and_then(|a| a.into_dimensionality::<Ix2>().ok())
                .ok_or_else(|| m.err(format!("`objectGuess`: expected a 2-D array [H, W], got shape {s:?}")))?,
        ),
    };
    let patches = match m.complex("Y")? {
        None => None,
        Some((mut s, v)) => {
            if s.len() == 4 && s[3] == 1 {
                s.pop();
            }
            if s.len() == 3 && s[0] == 1 && n != 1 {
                None // PtychoPINN's placeholder (1, N, N, 1)
            } else {
                Some(
                    ndarray::ArrayD::from_shape_vec(s.clone(), v)
                        .ok()
                        .and_then(|a| a.into_dimensionality::<Ix3>().ok())
                        .ok_or_else(|| m.err(format!("`Y`: expected [n, N, N], got shape {s:?}")))?,
                )
            }
        }
    };
    let ds = Dataset {
        diffraction,
        positions_px: stack(&x, &y),
        start_positions_px: stack(&xs, &ys),
        scan_index,
        probe,
        extra_probe_modes,
        object,
        true_positions_px,
        patches,
        metadata,
    };
    ds.validate().map_err(|e| Error::format(path, e.to_string()))?;
    Ok(ds)
}
