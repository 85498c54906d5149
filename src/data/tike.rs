//! Measured scans in tike's layout → [`Dataset`] (`ptycho import tike`).
//!
//! The input is a plain NPZ in tike's conventions, read with our own codec
//! (never a pickle): `scripts/tike_to_raw.py` writes one from tike's test
//! data (it unpickles, under a restricted unpickler, only an archive member
//! whose sha256 it pins); tike's own `.npz` files, with their leading
//! singleton axes, read too.
//!
//! | key | shape | meaning |
//! |---|---|---|
//! | `data` | `[n, N, N]` | counts (any real dtype), zero frequency at the corner `[0, 0]` |
//! | `scan` | `[n, 2]` | `(v, h)`: row and column of each probe window's top-left corner, object pixels |
//! | `scan_truth` | `[n, 2]` | optional: better-known positions, same convention |
//! | `probe` | `[K, N, N]` | complex incoherent probe modes, any scale |
//! | `source` | 0-d string | optional: where the data came from (becomes `metadata.generator`) |
//!
//! tike's forward model: `I = Σ_k |fft2(P_k · patch, norm="ortho")|²` with
//! `patch[i, j] = O(v + i, h + j)` and the zero frequency at the corners.
//!
//! Conversions into our conventions (docs/physics.md), each listed in
//! `metadata.data_transformations`:
//! - amplitude `X = sqrt(I)`, `intensity_scale = 1`, `n_photons` = mean
//!   total counts per pattern;
//! - `fftshift`: the count at `[0, 0]` moves to `[N/2, N/2]` (the probe is
//!   unchanged: for even N the shift is a relabelling of the far field);
//! - corner `(v, h)` → probe centre `x = h + N/2`, `y = v + N/2`, then every
//!   position (and truth position, by the same amount) is translated by whole
//!   pixels so the smallest `x` and `y` lie in `[N/2 + MARGIN_PX, N/2 +
//!   MARGIN_PX + 1)` (whole pixels keep tike's sub-pixel grid; the translation
//!   is in `metadata.extra["tike_import"]`);
//! - probe modes sorted by power, strongest first, and all scaled by one
//!   factor so that `Σ_k Σ|P_k|²` equals the mean counts per pattern.
//!
//! Nothing about the geometry (energy, distance, pixel size) is known:
//! `geometry` is `None`.
use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array1, Array2, Array3, ArrayD, Axis, Ix3};
use num_complex::Complex32;

use super::dataset::{Dataset, Metadata};
use super::npy::{self, NpyArray, NpyData};
use crate::error::{Error, Result};

/// Whole pixels between the smallest position and `N/2` after the import.
pub const MARGIN_PX: f64 = 4.0;

/// A scan in tike's layout and conventions (see the module docs), as read
/// from a raw NPZ or built in a notebook.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTike {
    /// Counts `[n, N, N]`, zero frequency at `[0, 0]`.
    pub data: Array3<f32>,
    /// Top-left corners `[n, 2]`, columns `(v, h)` (row, column), object pixels.
    pub scan: Array2<f64>,
    /// Better-known corners `[n, 2]`, same convention, when known.
    pub scan_truth: Option<Array2<f64>>,
    /// Incoherent probe modes `[K, N, N]`, any order and scale.
    pub probe: Array3<Complex32>,
    /// Where the data came from (becomes `metadata.generator`).
    pub source: Option<String>,
    /// What reading changed (dtypes, squeezed axes), carried into
    /// `metadata.data_transformations`.
    pub notes: Vec<String>,
}

/// Drops leading axes of length 1 until `rank` axes remain (tike stores
/// `data` as `[1, n, N, N]` and `probe` as `[1, 1, 1, K, N, N]`).
fn squeeze_leading(a: &NpyArray, key: &str, rank: usize, notes: &mut Vec<String>) -> Option<Vec<usize>> {
    let mut shape = a.shape.clone();
    while shape.len() > rank && shape[0] == 1 {
        shape.remove(0);
    }
    if shape.len() != rank {
        return None;
    }
    if shape != a.shape {
        notes.push(format!(
            "`{key}` {:?} → {shape:?} (leading axes of length 1 dropped)",
            a.shape
        ));
    }
    Some(shape)
}

fn real_array(
    a: NpyArray,
    key: &str,
    rank: usize,
    path: &Path,
    notes: &mut Vec<String>,
) -> Result<(Vec<usize>, Vec<f64>)> {
    let expected = match key {
        "data" => "[n, N, N] counts",
        _ => "[n, 2] (v, h) corners",
    };
    let shape = squeeze_leading(&a, key, rank, notes)
        .ok_or_else(|| Error::format(path, format!("`{key}`: expected {expected}, got shape {:?}", a.shape)))?;
    let values = a.data.to_f64().ok_or_else(|| {
        Error::format(
            path,
            format!("`{key}`: expected real numbers, got dtype {}", a.data.dtype_name()),
        )
    })?;
    Ok((shape, values))
}

/// Reads a raw tike NPZ (see the module docs) with our own `.npy` codec.
/// Shapes are checked against each other by [`import_tike`].
pub fn read_raw_tike(path: &Path) -> Result<RawTike> {
    let mut map: HashMap<String, NpyArray> = HashMap::new();
    let mut notes = Vec::new();
    for (key, arr) in npy::read_npz(path)? {
        match key.as_str() {
            "data" | "scan" | "scan_truth" | "probe" | "source" => {
                map.insert(key, arr?);
            }
            _ => notes.push(format!("ignored key `{key}` of the raw tike NPZ")),
        }
    }
    let mut take = |key: &str| {
        map.remove(key).ok_or_else(|| {
            Error::format(
                path,
                format!("missing key `{key}` (a raw tike NPZ has `data`, `scan`, `probe`)"),
            )
        })
    };
    let data = take("data")?;
    let scan = take("scan")?;
    let probe = take("probe")?;
    let scan_truth = take("scan_truth").ok();
    let source = match take("source").ok() {
        None => None,
        Some(NpyArray {
            data: NpyData::Str(s), ..
        }) if s.len() == 1 => s.into_iter().next(),
        Some(other) => {
            return Err(Error::format(
                path,
                format!(
                    "`source`: expected one string, got {} {:?}",
                    other.data.dtype_name(),
                    other.shape
                ),
            ));
        }
    };

    let dtype = data.data.dtype_name();
    let (dshape, dvalues) = real_array(data, "data", 3, path, &mut notes)?;
    let name = path
        .file_name()
        .map_or_else(|| path.display().to_string(), |f| f.to_string_lossy().into_owned());
    notes.insert(
        0,
        format!("read tike counts `data` ({dtype}) from the raw tike NPZ `{name}`"),
    );
    let data = Array3::from_shape_vec(
        (dshape[0], dshape[1], dshape[2]),
        dvalues.into_iter().map(|v| v as f32).collect(),
    )
    .expect("sizes agree");
    let corners = |a: NpyArray, key: &str, notes: &mut Vec<String>| -> Result<Array2<f64>> {
        let (s, v) = real_array(a, key, 2, path, notes)?;
        Ok(Array2::from_shape_vec((s[0], s[1]), v).expect("sizes agree"))
    };
    let scan = corners(scan, "scan", &mut notes)?;
    let scan_truth = scan_truth.map(|t| corners(t, "scan_truth", &mut notes)).transpose()?;

    let pshape = squeeze_leading(&probe, "probe", 3, &mut notes).ok_or_else(|| {
        Error::format(
            path,
            format!("`probe`: expected [K, N, N] modes, got shape {:?}", probe.shape),
        )
    })?;
    if matches!(probe.data, NpyData::C128(_)) {
        notes.push("`probe` complex128 → complex64".into());
    }
    let pvalues: Vec<Complex32> = probe.data.into_complex32().map_err(|other| {
        Error::format(
            path,
            format!("`probe`: expected complex modes, got dtype {}", other.dtype_name()),
        )
    })?;
    let probe = ArrayD::from_shape_vec(pshape, pvalues)
        .expect("sizes agree")
        .into_dimensionality::<Ix3>()
        .expect("3-D");
    Ok(RawTike {
        data,
        scan,
        scan_truth,
        probe,
        source,
        notes,
    })
}

/// Checks `raw`'s shapes against each other and its values.
fn check(raw: &RawTike) -> Result<()> {
    let d = raw.data.shape();
    let (n, big_n) = (d[0], d[1]);
    if n == 0 {
        return Err(Error::value("tike data", "has no patterns"));
    }
    if d[1] != d[2] || big_n % 2 != 0 {
        return Err(Error::shape(
            "tike data",
            "[n, N, N] (square patterns, even N)",
            format!("{d:?}"),
        ));
    }
    for (what, a) in
        std::iter::once(("tike scan", &raw.scan)).chain(raw.scan_truth.as_ref().map(|t| ("tike scan_truth", t)))
    {
        if a.shape() != [n, 2] {
            return Err(Error::shape(
                what,
                format!("[{n}, 2] (one (v, h) corner per pattern)"),
                format!("{:?}", a.shape()),
            ));
        }
        if let Some((i, p)) = a
            .outer_iter()
            .enumerate()
            .find(|(_, p)| p.iter().any(|v| !v.is_finite()))
        {
            return Err(Error::value(
                what,
                format!("non-finite corner ({}, {}) of pattern {i}", p[0], p[1]),
            ));
        }
    }
    let p = raw.probe.shape();
    if p[0] == 0 || p[1..] != [big_n, big_n] {
        return Err(Error::shape(
            "tike probe",
            format!("[K ≥ 1, {big_n}, {big_n}] (modes of the pattern size)"),
            format!("{p:?}"),
        ));
    }
    if raw.probe.iter().any(|c| !(c.re.is_finite() && c.im.is_finite())) {
        return Err(Error::value("tike probe", "contains non-finite values"));
    }
    for (i, pattern) in raw.data.outer_iter().enumerate() {
        if let Some(((r, c), &x)) = pattern.indexed_iter().find(|(_, x)| !(x.is_finite() && **x >= 0.0)) {
            let what = if x.is_finite() { "negative" } else { "non-finite" };
            return Err(Error::value(
                "tike data",
                format!("{what} count {x} in pattern {i} at detector pixel [{r}, {c}] (tike's unshifted frame)"),
            ));
        }
    }
    Ok(())
}

/// Converts a scan in tike's conventions into a validated [`Dataset`] in ours
/// (the module docs list every step).
pub fn import_tike(raw: &RawTike) -> Result<Dataset> {
    check(raw)?;
    let n = raw.data.shape()[0];
    let big_n = raw.data.shape()[1];
    let half = big_n / 2;
    let mut tr = raw.notes.clone();

    // counts → amplitude, zero frequency from the corner to (N/2, N/2)
    let mut diffraction = Array3::<f32>::zeros((n, big_n, big_n));
    let mut total = 0.0f64;
    let mut whole = true;
    for (src, mut dst) in raw.data.outer_iter().zip(diffraction.outer_iter_mut()) {
        for ((r, c), &x) in src.indexed_iter() {
            total += x as f64;
            whole &= x.fract() == 0.0;
            dst[[(r + half) % big_n, (c + half) % big_n]] = x.sqrt();
        }
    }
    if total <= 0.0 {
        return Err(Error::value("tike data", "no pattern recorded any counts"));
    }
    let mean_counts = total / n as f64;
    if !whole {
        tr.push("counts are not all whole numbers (kept as they are)".into());
    }
    tr.push(format!(
        "counts I → amplitude X = sqrt(I); intensity_scale = 1; n_photons = mean total counts per pattern = {mean_counts:.6e}"
    ));
    tr.push(format!(
        "zero frequency moved from the pattern corner [0, 0] to [{half}, {half}] (fftshift)"
    ));

    // corners → centres, then whole-pixel translation to the margin
    let corners_min = |c: usize| {
        std::iter::once(&raw.scan)
            .chain(raw.scan_truth.as_ref())
            .flat_map(|a| a.column(c).to_vec())
            .fold(f64::INFINITY, f64::min)
    };
    // x from h (column 1), y from v (column 0)
    let tx = MARGIN_PX - corners_min(1).floor();
    let ty = MARGIN_PX - corners_min(0).floor();
    let to_ours = |a: &Array2<f64>| {
        let x = a.column(1).mapv(|h| h + half as f64 + tx);
        let y = a.column(0).mapv(|v| v + half as f64 + ty);
        ndarray::stack(Axis(1), &[x.view(), y.view()]).expect("same length")
    };
    let positions_px = to_ours(&raw.scan);
    let true_positions_px = raw.scan_truth.as_ref().map(to_ours);
    tr.push(format!(
        "tike corner (v, h) of the probe window → probe centre x = h + {half}, y = v + {half} (object pixels)"
    ));
    let (lo, hi) = (half as f64 + MARGIN_PX, half as f64 + MARGIN_PX + 1.0);
    let which = if true_positions_px.is_some() {
        "positions and true positions"
    } else {
        "positions"
    };
    tr.push(format!(
        "{which} translated by ({tx:+}, {ty:+}) px (whole pixels): the smallest x and y lie in [{lo}, {hi})"
    ));
    if true_positions_px.is_some() {
        tr.push("tike `scan_truth` → true positions (same conversion)".into());
    }

    // probe modes: strongest first, one common scale
    let powers: Vec<f64> = raw
        .probe
        .outer_iter()
        .map(|m| m.iter().map(|c| c.norm_sqr() as f64).sum())
        .collect();
    let probe_power: f64 = powers.iter().sum();
    if probe_power <= 0.0 {
        return Err(Error::value("tike probe", "is zero everywhere"));
    }
    let mut order: Vec<usize> = (0..powers.len()).collect();
    order.sort_by(|&a, &b| powers[b].total_cmp(&powers[a]));
    let scale = (mean_counts / probe_power).sqrt();
    let modes = raw.probe.select(Axis(0), &order).mapv(|c| c * scale as f32);
    let probe = modes.index_axis(Axis(0), 0).to_owned();
    let extra_probe_modes = (modes.shape()[0] > 1).then(|| modes.slice(ndarray::s![1.., .., ..]).to_owned());
    let fractions: Vec<f64> = order.iter().map(|&k| powers[k] / probe_power).collect();
    let fmt_list = |v: &[f64]| v.iter().map(|f| format!("{f:.4}")).collect::<Vec<_>>().join(", ");
    if order.len() > 1 {
        tr.push(format!(
            "{} probe modes sorted by power, strongest first (tike's order {order:?}); power fractions [{}]",
            order.len(),
            fmt_list(&fractions)
        ));
    }
    tr.push(format!(
        "probe modes scaled by {scale:.6e} (one factor for all): Σ_k Σ|P_k|² = mean counts per pattern"
    ));

    let source = raw.source.clone();
    let mut extra = serde_json::Map::new();
    extra.insert(
        "tike_import".into(),
        serde_json::json!({
            "translation_px": {"x": tx, "y": ty},
            "position_map": format!("x = h + {half} + ({tx}), y = v + {half} + ({ty}); (v, h) = tike's top-left corner"),
            "margin_px": MARGIN_PX,
            "probe_scale": scale,
            "probe_mode_order": order,
            "probe_power_fractions": fractions,
            "zero_frequency": "moved from [0, 0] to [N/2, N/2] (fftshift)",
        }),
    );
    let ds = Dataset {
        diffraction,
        start_positions_px: positions_px.clone(),
        positions_px,
        scan_index: Array1::zeros(n),
        probe,
        extra_probe_modes,
        true_positions_px,
        object: None,
        patches: None,
        metadata: Metadata {
            n_photons: Some(mean_counts),
            intensity_scale: Some(1.0),
            generator: Some(source.unwrap_or_else(|| "tike data (source not recorded)".into())),
            geometry: None,
            data_transformations: tr,
            extra,
            ..Metadata::default()
        },
    };
    ds.validate()?;
    Ok(ds)
}

/// [`read_raw_tike`] then [`import_tike`]; errors name the file.
pub fn import_tike_file(path: &Path) -> Result<Dataset> {
    let raw = read_raw_tike(path)?;
    import_tike(&raw).map_err(|e| Error::format(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(n: usize, big_n: usize) -> RawTike {
        RawTike {
            data: Array3::from_elem((n, big_n, big_n), 1.0),
            scan: Array2::from_shape_fn((n, 2), |(i, c)| (i * 3 + c) as f64 + 0.25),
            scan_truth: None,
            probe: Array3::from_elem((1, big_n, big_n), Complex32::new(1.0, 0.0)),
            source: None,
            notes: vec![],
        }
    }

    #[test]
    fn uniform_counts_keep_their_dose_and_probe_power() {
        let ds = import_tike(&raw(2, 32)).unwrap();
        assert_eq!(ds.metadata.n_photons, Some(1024.0));
        let power: f64 = ds.probe.iter().map(|c| c.norm_sqr() as f64).sum();
        assert!((power / 1024.0 - 1.0).abs() < 1e-6);
        // smallest corner 0.25 → x = 0.25 + 16 + 4
        assert_eq!(ds.positions_px[[0, 0]], 1.25 + 16.0 + 4.0 - 1.0);
        assert_eq!(ds.positions_px[[0, 1]], 0.25 + 16.0 + 4.0);
    }

    #[test]
    fn odd_pattern_size_is_refused() {
        let mut r = raw(1, 32);
        r.data = Array3::ones((1, 31, 31));
        assert!(import_tike(&r).unwrap_err().to_string().contains("even N"));
    }
}
