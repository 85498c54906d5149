//! The `Dataset` value: what a notebook keeps between cells and what every
//! reader produces. It owns host arrays; tensors are made on demand.
use std::fmt;

use ndarray::{Array1, Array2, Array3, Axis};
use num_complex::Complex32;
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::array::{c64_to_tensor, f32_to_tensor, f64_to_tensor};
use crate::error::{Error, Result};

/// Patch sizes the models support.
pub const SUPPORTED_N: [usize; 3] = [32, 64, 128];

/// Largest object canvas side (pixels) that positions may imply when a
/// dataset has no ground-truth object (a complex64 canvas of 2 GiB).
pub const MAX_CANVAS_PX: usize = 16384;

/// Far-field geometry, needed to express pixels in metres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Geometry {
    pub photon_energy_ev: f64,
    pub detector_distance_m: f64,
    pub detector_pixel_size_m: f64,
}

impl Default for Geometry {
    /// 8 keV, 0.5 m, 75 µm pixels: 16.1 nm object pixels at N = 64.
    fn default() -> Self {
        Geometry {
            photon_energy_ev: 8000.0,
            detector_distance_m: 0.5,
            detector_pixel_size_m: 75e-6,
        }
    }
}

impl Geometry {
    /// Object pixel size `λ·z / (N·detector pixel)` for patch size `n`.
    pub fn object_pixel_size_m(&self, n: usize) -> f64 {
        crate::physics::object_pixel_size_m(
            self.photon_energy_ev,
            self.detector_distance_m,
            self.detector_pixel_size_m,
            n as i64,
        )
    }

    /// Checks every field is positive and finite.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("geometry.photon_energy_ev", self.photon_energy_ev),
            ("geometry.detector_distance_m", self.detector_distance_m),
            ("geometry.detector_pixel_size_m", self.detector_pixel_size_m),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::config(field, format!("must be positive, got {v}")));
            }
        }
        Ok(())
    }
}

/// What is known about how a dataset was made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// Mean total photon count per pattern (the dose).
    pub n_photons: Option<f64>,
    /// `s` such that `(s·X)²` are the counts.
    pub intensity_scale: Option<f64>,
    pub seed: Option<u64>,
    /// Program (and version) that made the data.
    pub generator: Option<String>,
    /// Resolved generator configuration.
    pub generator_config: Option<serde_json::Value>,
    pub geometry: Option<Geometry>,
    /// Conversions applied on reading (e.g. intensity → amplitude).
    pub data_transformations: Vec<String>,
    /// Keys of a foreign `_metadata` we keep but do not interpret.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A ptychography dataset (DESIGN §3–4).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Diffraction amplitudes `X`, `[n, N, N]`, zero frequency at `(N/2, N/2)`.
    pub diffraction: Array3<f32>,
    /// Scan positions `[n, 2]`, columns `(x, y)`, object pixels (DESIGN §3).
    pub positions_px: Array2<f64>,
    /// Nominal (commanded) positions `[n, 2]`; equal to `positions_px` unless known.
    pub start_positions_px: Array2<f64>,
    /// Scan number of each pattern `[n]`.
    pub scan_index: Array1<i64>,
    /// Probe `[N, N]`: the (strongest) first mode of a mixed-state probe.
    pub probe: Array2<Complex32>,
    /// The other incoherent probe modes `[K − 1, N, N]` of a mixed-state
    /// probe (intensity `Σ_k |F(P_k·O)|²`), strongest first; `None` for a
    /// coherent (one-mode) probe. [`Dataset::probe_modes`] stacks all K.
    pub extra_probe_modes: Option<Array3<Complex32>>,
    /// Ground-truth object `[H, W]`, when known.
    pub object: Option<Array2<Complex32>>,
    /// Positions `[n, 2]` `(x, y)` known better than `positions_px` (e.g. a
    /// measured scan's corrected positions), to check position correction
    /// against; `None` when there are none.
    pub true_positions_px: Option<Array2<f64>>,
    /// Ground-truth patches `[n, N, N]` (PtychoPINN's `Y`), when stored.
    pub patches: Option<Array3<Complex32>>,
    pub metadata: Metadata,
}

/// Axis along which to split a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SplitAxis {
    X,
    #[default]
    Y,
}

impl std::str::FromStr for SplitAxis {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "x" => Ok(SplitAxis::X),
            "y" => Ok(SplitAxis::Y),
            _ => Err(Error::config("axis", format!("`{s}` is not x or y"))),
        }
    }
}

fn check_finite<'a>(what: &str, values: impl Iterator<Item = &'a f64>) -> Result<()> {
    if let Some((i, v)) = values.enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::value(what, format!("non-finite value {v} at element {i}")));
    }
    Ok(())
}

impl Dataset {
    /// Number of patterns.
    pub fn n_images(&self) -> usize {
        self.diffraction.shape()[0]
    }

    /// Patch (and probe) size N.
    pub fn patch_size(&self) -> usize {
        self.diffraction.shape()[1]
    }

    /// Number of incoherent probe modes K (1 for a coherent probe).
    pub fn n_probe_modes(&self) -> usize {
        1 + self.extra_probe_modes.as_ref().map_or(0, |e| e.shape()[0])
    }

    /// Every probe mode `[K, N, N]`: `probe` first, then `extra_probe_modes`.
    pub fn probe_modes(&self) -> Array3<Complex32> {
        let first = self.probe.view().insert_axis(Axis(0));
        match &self.extra_probe_modes {
            None => first.to_owned(),
            Some(e) => ndarray::concatenate(Axis(0), &[first, e.view()]).expect("validated shapes agree"),
        }
    }

    /// Checks shapes and values; the error names the first problem found.
    pub fn validate(&self) -> Result<()> {
        let d = self.diffraction.shape();
        let (n, big_n) = (d[0], d[1]);
        if n == 0 {
            return Err(Error::value("diffraction", "the dataset has no patterns"));
        }
        if d[1] != d[2] {
            return Err(Error::shape(
                "diffraction",
                "[n, N, N] (square patterns)",
                format!("{d:?}"),
            ));
        }
        if !SUPPORTED_N.contains(&big_n) {
            return Err(Error::value(
                "diffraction",
                format!("pattern size N = {big_n} is not supported (use one of {SUPPORTED_N:?})"),
            ));
        }
        for (what, a) in [
            ("positions", &self.positions_px),
            ("start positions", &self.start_positions_px),
        ] {
            if a.shape() != [n, 2] {
                return Err(Error::shape(what, format!("[{n}, 2]"), format!("{:?}", a.shape())));
            }
            check_finite(what, a.iter())?;
        }
        if self.scan_index.len() != n {
            return Err(Error::shape(
                "scan_index",
                format!("[{n}]"),
                format!("[{}]", self.scan_index.len()),
            ));
        }
        if self.probe.shape() != [big_n, big_n] {
            return Err(Error::shape(
                "probe",
                format!("[{big_n}, {big_n}] (the pattern size)"),
                format!("{:?}", self.probe.shape()),
            ));
        }
        if let Some((i, _)) = self
            .probe
            .iter()
            .enumerate()
            .find(|(_, c)| !(c.re.is_finite() && c.im.is_finite()))
        {
            return Err(Error::value("probe", format!("non-finite value at element {i}")));
        }
        if self.probe.iter().all(|c| c.norm_sqr() == 0.0) {
            return Err(Error::value("probe", "is zero everywhere"));
        }
        if let Some(extra) = &self.extra_probe_modes {
            let s = extra.shape();
            if s[0] == 0 || s[1..] != [big_n, big_n] {
                return Err(Error::shape(
                    "extra probe modes",
                    format!("[K − 1 ≥ 1, {big_n}, {big_n}]"),
                    format!("{s:?}"),
                ));
            }
            if let Some((i, _)) = extra
                .iter()
                .enumerate()
                .find(|(_, c)| !(c.re.is_finite() && c.im.is_finite()))
            {
                return Err(Error::value(
                    "extra probe modes",
                    format!("non-finite value at element {i}"),
                ));
            }
        }
        if let Some(t) = &self.true_positions_px {
            if t.shape() != [n, 2] {
                return Err(Error::shape(
                    "true positions",
                    format!("[{n}, 2]"),
                    format!("{:?}", t.shape()),
                ));
            }
            check_finite("true positions", t.iter())?;
        }
        // fast check first (all finite and non-negative), details only on failure
        // without a branch per value (so the chunked check vectorises)
        let valid = |x: &f32| x.is_finite() & (*x >= 0.0);
        let chunk_valid = |c: &[f32]| c.iter().fold(true, |ok, x| ok & valid(x));
        let all_valid = match self.diffraction.as_slice() {
            Some(v) => v.par_chunks(1 << 14).all(chunk_valid),
            None => self.diffraction.iter().all(valid),
        };
        let first_bad = (!all_valid)
            .then(|| self.diffraction.iter().enumerate().find(|(_, x)| !valid(x)))
            .flatten();
        if let Some((i, &x)) = first_bad {
            let reason = if x.is_finite() {
                "negative amplitude"
            } else {
                "non-finite value"
            };
            return Err(Error::value(
                "diffraction",
                format!("{reason} {x} in pattern {}", i / (big_n * big_n)),
            ));
        }
        let any_light = match self.diffraction.as_slice() {
            Some(v) => v.par_iter().any(|&x| x > 0.0),
            None => self.diffraction.iter().any(|&x| x > 0.0),
        };
        if !any_light {
            return Err(Error::value(
                "diffraction",
                "is zero everywhere: no pattern recorded any photons (a single dark pattern is accepted)",
            ));
        }
        if let Some(p) = &self.patches
            && p.shape() != [n, big_n, big_n]
        {
            return Err(Error::shape(
                "Y (ground-truth patches)",
                format!("[{n}, {big_n}, {big_n}]"),
                format!("{:?}", p.shape()),
            ));
        }
        if let Some(o) = &self.object {
            let (h, w) = (o.shape()[0] as f64, o.shape()[1] as f64);
            if o.iter().any(|c| !(c.re.is_finite() && c.im.is_finite())) {
                return Err(Error::value("object", "contains non-finite values"));
            }
            let half = (big_n / 2) as f64;
            for (i, p) in self.positions_px.outer_iter().enumerate() {
                let (x, y) = (p[0], p[1]);
                if x < half || y < half || x > w - half || y > h - half {
                    return Err(Error::value(
                        "positions",
                        format!(
                            "position {i} (x = {x}, y = {y}) puts its {big_n}×{big_n} patch outside the \
                             {}×{} object (allowed: {half} ≤ x ≤ {}, {half} ≤ y ≤ {})",
                            h,
                            w,
                            w - half,
                            h - half
                        ),
                    ));
                }
            }
        }
        if self.object.is_none() {
            // the canvas is then sized from the positions: bound it before
            // anyone allocates it (a stray 1e9 would ask for exabytes)
            let (lo, hi) = (-((big_n / 2) as f64), MAX_CANVAS_PX as f64 - (big_n / 2) as f64);
            if let Some((i, p)) = self
                .positions_px
                .outer_iter()
                .enumerate()
                .find(|(_, p)| p.iter().any(|&v| v < lo || v > hi))
            {
                return Err(Error::value(
                    "positions",
                    format!(
                        "position {i} (x = {}, y = {}) is outside the largest object canvas \
                         ({MAX_CANVAS_PX}×{MAX_CANVAS_PX} px): without a ground-truth object, positions must \
                         lie in {lo} ≤ x, y ≤ {hi} object pixels",
                        p[0], p[1]
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The patterns whose indices are listed, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        Dataset {
            diffraction: self.diffraction.select(Axis(0), indices),
            positions_px: self.positions_px.select(Axis(0), indices),
            start_positions_px: self.start_positions_px.select(Axis(0), indices),
            scan_index: self.scan_index.select(Axis(0), indices),
            probe: self.probe.clone(),
            extra_probe_modes: self.extra_probe_modes.clone(),
            object: self.object.clone(),
            true_positions_px: self.true_positions_px.as_ref().map(|p| p.select(Axis(0), indices)),
            patches: self.patches.as_ref().map(|p| p.select(Axis(0), indices)),
            metadata: self.metadata.clone(),
        }
    }

    /// Splits by position: patterns with coordinate below
    /// `min + fraction·(max − min)` (along `axis`) go to the first dataset,
    /// the rest to the second. Both keep the probe and the object. Errors if
    /// either side would be empty.
    pub fn split(&self, axis: SplitAxis, fraction: f64) -> Result<(Dataset, Dataset)> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::config("fraction", format!("must be in (0, 1), got {fraction}")));
        }
        let col = match axis {
            SplitAxis::X => 0,
            SplitAxis::Y => 1,
        };
        let c = self.positions_px.column(col);
        let lo = c.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = c.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let threshold = lo + fraction * (hi - lo);
        let (first, second): (Vec<usize>, Vec<usize>) = (0..self.n_images()).partition(|&i| c[i] < threshold);
        if first.is_empty() || second.is_empty() {
            return Err(Error::value(
                "split",
                format!(
                    "splitting {} patterns at {axis:?} < {threshold:.2} px leaves one side empty \
                     (positions span {lo:.2}..{hi:.2})",
                    self.n_images()
                ),
            ));
        }
        let mut a = self.select(&first);
        let mut b = self.select(&second);
        let note = |part: &str| format!("split: {part} of {axis:?} at {threshold:.3} px (fraction {fraction})");
        a.metadata.data_transformations.push(note("below"));
        b.metadata.data_transformations.push(note("at or above"));
        Ok((a, b))
    }

    /// `count` patterns drawn without replacement (fixed by `seed`), kept in
    /// their original order.
    pub fn subsample(&self, count: usize, seed: u64) -> Result<Dataset> {
        if count == 0 || count > self.n_images() {
            return Err(Error::config(
                "count",
                format!("must be in 1..={}, got {count}", self.n_images()),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut idx = sample(&mut rng, self.n_images(), count).into_vec();
        idx.sort_unstable();
        let mut out = self.select(&idx);
        out.metadata
            .data_transformations
            .push(format!("subsample: {count} of {} (seed {seed})", self.n_images()));
        Ok(out)
    }

    /// Diffraction as a tensor. # Shapes: `[n, N, N]` f32.
    pub fn diffraction_tensor(&self, device: Device) -> Tensor {
        f32_to_tensor(&self.diffraction, device)
    }

    /// Positions as a tensor. # Shapes: `[n, 2]` f64, columns `(x, y)`.
    pub fn positions_tensor(&self, device: Device) -> Tensor {
        f64_to_tensor(&self.positions_px, device)
    }

    /// Probe as a tensor. # Shapes: `[N, N]` complex64.
    pub fn probe_tensor(&self, device: Device) -> Tensor {
        c64_to_tensor(&self.probe, device)
    }

    /// Ground-truth object as a tensor, if known. # Shapes: `[H, W]` complex64.
    pub fn object_tensor(&self, device: Device) -> Option<Tensor> {
        self.object.as_ref().map(|o| c64_to_tensor(o, device))
    }

    /// A summary for printing or `--json`.
    pub fn summary(&self) -> DatasetSummary {
        let n = self.n_images();
        let big_n = self.patch_size();
        let energy: f64 = self.diffraction.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>() / n.max(1) as f64;
        let s = self.metadata.intensity_scale;
        let col_range = |c: usize| {
            let v = self.positions_px.column(c);
            [
                v.iter().cloned().fold(f64::INFINITY, f64::min),
                v.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            ]
        };
        DatasetSummary {
            n_images: n,
            patch_size: big_n,
            object_shape: self.object.as_ref().map(|o| [o.shape()[0], o.shape()[1]]),
            n_photons: self.metadata.n_photons,
            intensity_scale: s,
            mean_counts_per_pattern: s.map(|s| s * s * energy),
            mean_amplitude_energy: energy,
            x_range_px: col_range(0),
            y_range_px: col_range(1),
            has_ground_truth_patches: self.patches.is_some(),
            generator: self.metadata.generator.clone(),
            seed: self.metadata.seed,
            object_pixel_size_m: self.metadata.geometry.map(|g| g.object_pixel_size_m(big_n)),
            data_transformations: self.metadata.data_transformations.clone(),
        }
    }
}

/// What `ptycho dataset inspect` prints.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DatasetSummary {
    pub n_images: usize,
    pub patch_size: usize,
    pub object_shape: Option<[usize; 2]>,
    pub n_photons: Option<f64>,
    pub intensity_scale: Option<f64>,
    /// `s²·mean Σ X²`: the dose actually present in the data.
    pub mean_counts_per_pattern: Option<f64>,
    pub mean_amplitude_energy: f64,
    pub x_range_px: [f64; 2],
    pub y_range_px: [f64; 2],
    pub has_ground_truth_patches: bool,
    pub generator: Option<String>,
    pub seed: Option<u64>,
    pub object_pixel_size_m: Option<f64>,
    pub data_transformations: Vec<String>,
}

impl fmt::Display for DatasetSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<f64>| v.map_or("unknown".to_string(), |v| format!("{v:.6e}"));
        writeln!(
            f,
            "patterns           {} × {}×{}",
            self.n_images, self.patch_size, self.patch_size
        )?;
        match self.object_shape {
            Some([h, w]) => writeln!(f, "object             {h}×{w} (ground truth)")?,
            None => writeln!(f, "object             none")?,
        }
        writeln!(f, "dose (photons)     {}", opt(self.n_photons))?;
        writeln!(f, "intensity scale    {}", opt(self.intensity_scale))?;
        writeln!(f, "counts / pattern   {}", opt(self.mean_counts_per_pattern))?;
        writeln!(
            f,
            "x range (px)       {:.2} .. {:.2}",
            self.x_range_px[0], self.x_range_px[1]
        )?;
        writeln!(
            f,
            "y range (px)       {:.2} .. {:.2}",
            self.y_range_px[0], self.y_range_px[1]
        )?;
        if let Some(dx) = self.object_pixel_size_m {
            writeln!(f, "object pixel       {:.3} nm", dx * 1e9)?;
        }
        writeln!(
            f,
            "Y patches          {}",
            if self.has_ground_truth_patches { "yes" } else { "no" }
        )?;
        if let Some(g) = &self.generator {
            writeln!(
                f,
                "generator          {g} (seed {})",
                self.seed.map_or("-".into(), |s| s.to_string())
            )?;
        }
        for t in &self.data_transformations {
            writeln!(f, "transformation     {t}")?;
        }
        Ok(())
    }
}
