//! `simulate(&SimConfig) -> Dataset`: object, probe, scan, far field and
//! Poisson noise (DESIGN §3), deterministic per seed.
//!
//! Random draws use streams derived from `seed`: ChaCha8 stream 1 for the
//! object, 2 for the scan, and one stream per pattern for the noise
//! ([`crate::physics::noise::pattern_rng`]). The same configuration gives the same
//! dataset, bit for bit, on the same device.
use std::f64::consts::PI;
use std::path::PathBuf;

use ndarray::{Array1, Array2, Array3, Ix2, Ix3};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::array::{c64_to_tensor, f32_to_tensor, f64_to_tensor, tensor_to_c64};
use crate::data::{Dataset, Geometry, Metadata, SUPPORTED_N};
use crate::error::{Error, Result};
use crate::physics::{self, ZonePlate};

/// Which test object to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectKind {
    SiemensStar,
    /// Sparse thin lines with a Gaussian cross-section (`line_width_px`).
    Lines,
    /// PtychoPINN's lines texture: thin lines on broad blurred ridges
    /// ([`physics::object::multiscale_lines`]).
    MultiscaleLines,
    Blobs,
    /// A grayscale PNG (`object.path`).
    Png,
}

/// What a PNG object drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PngUse {
    Amplitude,
    Phase,
    #[default]
    Both,
}

/// Object section of [`SimConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectConfig {
    pub kind: ObjectKind,
    /// PNG file for `kind = "png"`.
    pub path: Option<PathBuf>,
    pub png_use: PngUse,
    /// Spokes (star), lines, multiscale lines (on the doubled canvas) or
    /// blobs; `None` = 36, 100, 400, 30.
    pub features: Option<usize>,
    /// Line σ for `lines`, pixels.
    pub line_width_px: f64,
    /// Amplitude range `[amplitude_min, 1]`.
    pub amplitude_min: f64,
    /// Phase range `[−phase_max_rad, phase_max_rad]`.
    pub phase_max_rad: f64,
}

impl Default for ObjectConfig {
    fn default() -> Self {
        ObjectConfig {
            kind: ObjectKind::Lines,
            path: None,
            png_use: PngUse::Both,
            features: None,
            line_width_px: 1.0,
            amplitude_min: 0.5,
            phase_max_rad: PI / 2.0,
        }
    }
}

/// Which probe to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    ZonePlate,
    Disk,
    /// `probeGuess` of a dataset NPZ (`probe.path`).
    File,
}

/// Probe section of [`SimConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    pub kind: ProbeKind,
    pub path: Option<PathBuf>,
    /// Disk radius; `None` = N/4.
    pub radius_px: Option<f64>,
    /// Disk edge smoothing σ.
    pub smoothing_px: f64,
    pub outer_zone_width_m: f64,
    pub central_stop_fraction: f64,
    pub defocus_m: f64,
    /// Incoherent probe modes K (a partially coherent beam): 1 = coherent.
    /// Modes after the first are the probe times low-order polynomials,
    /// orthogonalised, each with `mode_power` of the total power
    /// (`recon::iterative::modes::probe_modes`); the patterns are
    /// `Σ_k |F(P_k·O)|²` and the dataset keeps every mode (`probe_modes`).
    #[serde(skip_serializing_if = "is_one")]
    pub modes: usize,
    /// Each added mode's share of the total power, in (0, 1/K).
    #[serde(skip_serializing_if = "is_default_mode_power")]
    pub mode_power: f64,
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

fn is_default_mode_power(v: &f64) -> bool {
    *v == DEFAULT_MODE_POWER
}

/// [`ProbeConfig::mode_power`]'s default.
pub const DEFAULT_MODE_POWER: f64 = 0.1;

impl Default for ProbeConfig {
    /// A 50 nm zone plate with a 40 % central stop, 120 µm out of focus:
    /// 90 % of its intensity within a diameter of about 30 px at N = 64 with
    /// the default geometry.
    fn default() -> Self {
        ProbeConfig {
            kind: ProbeKind::ZonePlate,
            path: None,
            radius_px: None,
            smoothing_px: 1.0,
            outer_zone_width_m: 50e-9,
            central_stop_fraction: 0.4,
            defocus_m: 120e-6,
            modes: 1,
            mode_power: DEFAULT_MODE_POWER,
        }
    }
}

/// Scan pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScanKind {
    Raster,
    Spiral,
    Random,
}

/// Scan section of [`SimConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    pub kind: ScanKind,
    /// Raster and spiral spacing.
    pub spacing_px: f64,
    /// Raster jitter (uniform, ±).
    pub jitter_px: f64,
    /// Number of positions: required count for spiral/random (default 512);
    /// for a raster, keeps the first n in raster order.
    pub n_images: Option<usize>,
    /// Extra margin for random positions.
    pub buffer_px: f64,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            kind: ScanKind::Raster,
            spacing_px: 8.0,
            jitter_px: 0.0,
            n_images: None,
            buffer_px: 0.0,
        }
    }
}

/// Everything `simulate` needs; saved resolved into the dataset's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    pub seed: u64,
    /// Patch and probe size N (32, 64 or 128).
    pub size_px: usize,
    /// Object side (square object).
    pub object_size_px: usize,
    /// Mean photons per pattern; `None` = no noise (X = A).
    pub dose_photons: Option<f64>,
    /// Store ground-truth patches `Y`.
    pub store_patches: bool,
    pub geometry: Geometry,
    pub object: ObjectConfig,
    pub probe: ProbeConfig,
    pub scan: ScanConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            size_px: 64,
            object_size_px: 256,
            dose_photons: Some(1e6),
            store_patches: false,
            geometry: Geometry::default(),
            object: ObjectConfig::default(),
            probe: ProbeConfig::default(),
            scan: ScanConfig::default(),
        }
    }
}

impl SimConfig {
    /// Parses a TOML configuration (unknown keys are errors).
    pub fn from_toml(text: &str) -> Result<SimConfig> {
        toml::from_str(text).map_err(|e| Error::config("sim config", e.to_string()))
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if !SUPPORTED_N.contains(&self.size_px) {
            return Err(Error::config(
                "size_px",
                format!("must be one of {SUPPORTED_N:?}, got {}", self.size_px),
            ));
        }
        if self.object_size_px < self.size_px + 2 {
            return Err(Error::config(
                "object_size_px",
                format!(
                    "must be at least size_px + 2 = {}, got {}",
                    self.size_px + 2,
                    self.object_size_px
                ),
            ));
        }
        if self.object_size_px > 16384 {
            return Err(Error::config(
                "object_size_px",
                format!("at most 16384, got {}", self.object_size_px),
            ));
        }
        if let Some(d) = self.dose_photons
            && !(d.is_finite() && d > 0.0)
        {
            return Err(Error::config("dose_photons", format!("must be positive, got {d}")));
        }
        self.geometry.validate()?;
        let o = &self.object;
        if !(0.0..=1.0).contains(&o.amplitude_min) {
            return Err(Error::config(
                "object.amplitude_min",
                format!("must be in [0, 1], got {}", o.amplitude_min),
            ));
        }
        if !(0.0..=PI).contains(&o.phase_max_rad) {
            return Err(Error::config(
                "object.phase_max_rad",
                format!("must be in [0, π], got {}", o.phase_max_rad),
            ));
        }
        if o.kind == ObjectKind::Png && o.path.is_none() {
            return Err(Error::config("object.path", "a PNG object needs a path"));
        }
        if !(1..=16).contains(&self.probe.modes) {
            return Err(Error::config(
                "probe.modes",
                format!("must be in 1..=16, got {}", self.probe.modes),
            ));
        }
        if self.probe.modes > 1
            && !(self.probe.mode_power > 0.0 && self.probe.mode_power < 1.0 / self.probe.modes as f64)
        {
            return Err(Error::config(
                "probe.mode_power",
                format!(
                    "must be in (0, 1/K) for K = {} modes, got {}",
                    self.probe.modes, self.probe.mode_power
                ),
            ));
        }
        if self.probe.kind == ProbeKind::File && self.probe.path.is_none() {
            return Err(Error::config("probe.path", "a probe from a file needs a path"));
        }
        let s = &self.scan;
        if !(s.spacing_px.is_finite() && s.spacing_px > 0.0) {
            return Err(Error::config(
                "scan.spacing_px",
                format!("must be positive, got {}", s.spacing_px),
            ));
        }
        // a raster's size follows from the spacing: bound it before allocating
        let per_axis = (self.object_size_px.saturating_sub(self.size_px) as f64 / s.spacing_px).floor() + 1.0;
        if s.kind == ScanKind::Raster && per_axis * per_axis > 10_000_000.0 {
            return Err(Error::config(
                "scan.spacing_px",
                format!(
                    "{} px gives {:.3e} raster positions on a {} px object (at most 10 000 000)",
                    s.spacing_px,
                    per_axis * per_axis,
                    self.object_size_px
                ),
            ));
        }
        if s.n_images == Some(0) {
            return Err(Error::config("scan.n_images", "must be at least 1"));
        }
        if s.n_images.is_some_and(|n| n > 10_000_000) {
            return Err(Error::config("scan.n_images", "at most 10 000 000"));
        }
        Ok(())
    }

    /// Object pixel size for this geometry and N.
    pub fn object_pixel_size_m(&self) -> f64 {
        self.geometry.object_pixel_size_m(self.size_px)
    }
}

fn make_object(cfg: &SimConfig, device: Device) -> Result<Tensor> {
    let side = cfg.object_size_px as i64;
    let o = &cfg.object;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng.set_stream(1);
    let map = match o.kind {
        ObjectKind::SiemensStar => physics::object::siemens_star(side, side, o.features.unwrap_or(36), device)?,
        ObjectKind::Lines => {
            physics::object::random_lines(side, side, o.features.unwrap_or(100), o.line_width_px, &mut rng, device)?
        }
        ObjectKind::MultiscaleLines => {
            physics::object::multiscale_lines(side, side, o.features.unwrap_or(400), &mut rng, device)?
        }
        ObjectKind::Blobs => physics::object::random_blobs(side, side, o.features.unwrap_or(30), &mut rng, device)?,
        ObjectKind::Png => {
            let path = o.path.as_ref().expect("validated");
            let img = crate::data::image::load_grayscale(path, side as usize, side as usize)?;
            f32_to_tensor(&img, device)
        }
    };
    let (amp, phase) = match (o.kind, o.png_use) {
        (ObjectKind::Png, PngUse::Amplitude) => (map.shallow_clone(), map.ones_like() * 0.5),
        (ObjectKind::Png, PngUse::Phase) => (map.ones_like(), map.shallow_clone()),
        _ => (map.shallow_clone(), map),
    };
    physics::object::complex_object(&amp, &phase, o.amplitude_min, o.phase_max_rad)
}

fn make_probe(cfg: &SimConfig, device: Device) -> Result<Tensor> {
    let n = cfg.size_px as i64;
    let p = &cfg.probe;
    match p.kind {
        ProbeKind::Disk => physics::disk_probe(n, p.radius_px.unwrap_or(n as f64 / 4.0), p.smoothing_px, device),
        ProbeKind::ZonePlate => physics::zone_plate_probe(
            n,
            &ZonePlate {
                photon_energy_ev: cfg.geometry.photon_energy_ev,
                pixel_size_m: cfg.object_pixel_size_m(),
                outer_zone_width_m: p.outer_zone_width_m,
                central_stop_fraction: p.central_stop_fraction,
                defocus_m: p.defocus_m,
            },
            device,
        ),
        ProbeKind::File => {
            let path = p.path.as_ref().expect("validated");
            let ds = crate::data::read_npz(path)?;
            if ds.probe.shape() != [cfg.size_px, cfg.size_px] {
                return Err(Error::config(
                    "probe.path",
                    format!(
                        "{}: probe is {:?}, the simulation needs [{n}, {n}] (size_px)",
                        path.display(),
                        ds.probe.shape()
                    ),
                ));
            }
            Ok(c64_to_tensor(&ds.probe, device))
        }
    }
}

fn make_scan(cfg: &SimConfig) -> Result<Vec<[f64; 2]>> {
    let side = cfg.object_size_px as i64;
    let n = cfg.size_px as i64;
    let s = &cfg.scan;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    rng.set_stream(2);
    let count = s.n_images.unwrap_or(512);
    let mut positions = match s.kind {
        ScanKind::Raster => physics::scan::raster(side, side, n, s.spacing_px, s.jitter_px, &mut rng)?,
        ScanKind::Spiral => physics::scan::fermat_spiral(side, side, n, count, s.spacing_px)?,
        ScanKind::Random => physics::scan::uniform_random(side, side, n, count, s.buffer_px, &mut rng)?,
    };
    if let (ScanKind::Raster, Some(k)) = (s.kind, s.n_images) {
        if k > positions.len() {
            return Err(Error::config(
                "scan.n_images",
                format!("the raster has {} positions, {k} requested", positions.len()),
            ));
        }
        positions.truncate(k);
    }
    Ok(positions)
}

/// Patterns per batch on the device: bounds memory (~70 MB at N = 64).
const BATCH: usize = 512;

/// `Σ v` in float64 over eight interleaved partial sums (a fixed order, so
/// the result is the same on every machine; eight independent additions
/// per step instead of one long dependency chain).
fn sum_in_lanes(values: &[f32]) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = values.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v as f64;
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// Simulates a dataset on the default device (CUDA when present).
pub fn simulate(cfg: &SimConfig) -> Result<Dataset> {
    simulate_on(cfg, crate::array::default_device())
}

/// Simulates a dataset on `device`.
pub fn simulate_on(cfg: &SimConfig, device: Device) -> Result<Dataset> {
    crate::runtime::keep_freed_memory();
    cfg.validate()?;
    let _guard = tch::no_grad_guard();
    // On the CPU libtorch's ops before the far field are small: on one
    // thread its workers do not wake up, so they do not spin beside rayon's
    // later (the far field sets every worker's threads itself).
    let threads = (device == Device::Cpu).then(crate::runtime::SingleTorchThread::enter);
    let n = cfg.size_px;
    let object = make_object(cfg, device)?;
    let probe = make_probe(cfg, device)?;
    let positions = make_scan(cfg)?;
    let count = positions.len();
    let flat: Vec<f64> = positions.iter().flat_map(|p| [p[0], p[1]]).collect();
    let positions_px = Array2::from_shape_vec((count, 2), flat).expect("sizes agree");
    let pos_t = f64_to_tensor(&positions_px, device);

    // the probe's incoherent modes `[K, N, N]`, the first one first
    let single = tensor_to_c64(&probe)?.into_dimensionality::<Ix2>().expect("2-D");
    let modes = if cfg.probe.modes > 1 {
        crate::recon::iterative::modes::probe_modes(
            &single.insert_axis(ndarray::Axis(0)),
            cfg.probe.modes,
            cfg.probe.mode_power,
        )?
        .0
    } else {
        single.insert_axis(ndarray::Axis(0))
    };
    // the dataset's copy of the object (the CPU's far field reads it)
    let object_host = tensor_to_c64(&object)?.into_dimensionality::<Ix2>().expect("2-D");
    let mut values = vec![0f32; count * n * n];
    // the far-field intensities of every mode, added (one buffer per mode
    // after the first)
    let mut mode_values = if modes.shape()[0] > 1 {
        vec![0f32; count * n * n]
    } else {
        Vec::new()
    };
    let mut patches: Vec<num_complex::Complex32> = Vec::new();
    // back to the caller's count, which the workers get back afterwards
    drop(threads);
    for (k, mode) in modes.outer_iter().enumerate() {
        // the fftshift is folded into the probe (physics::forward::shift_modulation)
        let modulated_probe =
            c64_to_tensor(&mode.to_owned(), device) * physics::forward::shift_modulation(n as i64, n as i64, device);
        let out = if k == 0 { &mut values } else { &mut mode_values };
        let keep_patches = cfg.store_patches && k == 0;
        if device == Device::Cpu {
            // fused on the host, a chunk of patterns at a time in each core's cache
            let probe_values = tensor_to_c64(&modulated_probe)?;
            let host_object = physics::host::HostObject {
                values: object_host.as_slice().expect("a fresh array is contiguous"),
                height: object_host.nrows(),
                width: object_host.ncols(),
            };
            let probe_values = probe_values.as_slice().expect("a fresh array is contiguous");
            physics::host::far_field_intensities(host_object, probe_values, n, &positions, out)?;
            if keep_patches {
                for start in (0..count).step_by(BATCH) {
                    let len = BATCH.min(count - start);
                    let batch =
                        physics::extract_patches(&object, &pos_t.narrow(0, start as i64, len as i64), n as i64)?;
                    patches.extend(tensor_to_c64(&batch)?.iter());
                }
            }
        } else {
            for start in (0..count).step_by(BATCH) {
                let len = BATCH.min(count - start);
                let mut batch =
                    physics::extract_patches(&object, &pos_t.narrow(0, start as i64, len as i64), n as i64)?;
                if keep_patches {
                    patches.extend(tensor_to_c64(&batch)?.iter());
                }
                physics::forward::exit_waves_in_place(&modulated_probe, &mut batch)?;
                // one copy to the host per batch
                let intensity = physics::forward::far_field_intensity_modulated(&batch).to_device(Device::Cpu);
                let dst = &mut out[start * n * n..(start + len) * n * n];
                intensity.contiguous().f_copy_data(dst, len * n * n)?;
            }
        }
        if k > 0 {
            values
                .par_iter_mut()
                .zip(mode_values.par_iter())
                .for_each(|(v, m)| *v += m);
        }
    }
    // Σ I = Σ |Ψ|² (Parseval), summed on the host per pattern, then in order,
    // so the scale does not depend on the thread count.
    let per_pattern: Vec<f64> = values.par_chunks(n * n).map(sum_in_lanes).collect();
    let mean_energy = per_pattern.iter().sum::<f64>() / count as f64;
    let mut metadata = Metadata {
        seed: Some(cfg.seed),
        generator: Some(format!("ptycho-workbench {} simulate", env!("CARGO_PKG_VERSION"))),
        generator_config: Some(serde_json::to_value(cfg).expect("config serialises")),
        geometry: Some(cfg.geometry),
        ..Metadata::default()
    };
    match cfg.dose_photons {
        Some(dose) => {
            let s = physics::intensity_scale(dose, mean_energy)?;
            physics::noisy_amplitude_from_intensity(&mut values, n * n, s, cfg.seed, 0);
            metadata.n_photons = Some(dose);
            metadata.intensity_scale = Some(s);
        }
        None => values.par_iter_mut().for_each(|v| *v = v.sqrt()),
    }
    let ds = Dataset {
        diffraction: Array3::from_shape_vec((count, n, n), values).expect("sizes agree"),
        start_positions_px: positions_px.clone(),
        positions_px,
        scan_index: Array1::zeros(count),
        probe: modes.index_axis(ndarray::Axis(0), 0).to_owned(),
        extra_probe_modes: (modes.shape()[0] > 1).then(|| modes.slice(ndarray::s![1.., .., ..]).to_owned()),
        true_positions_px: None,
        object: Some(object_host),
        patches: cfg
            .store_patches
            .then(|| ndarray::ArrayD::from_shape_vec(vec![count, n, n], patches).expect("sizes agree"))
            .map(|a| a.into_dimensionality::<Ix3>().expect("3-D")),
        metadata,
    };
    ds.validate()?;
    Ok(ds)
}

/// Noise-free far-field amplitudes of a dataset's own object, probe (all
/// its modes) and positions (what `simulate` computes before the noise).
///
/// # Shapes
/// returns `[n, N, N]` float32 on `device`
pub fn forward_amplitudes(ds: &Dataset, device: Device) -> Result<Tensor> {
    let object = ds
        .object_tensor(device)
        .ok_or_else(|| Error::value("dataset", "has no ground-truth object"))?;
    let patches = physics::extract_patches(&object, &ds.positions_tensor(device), ds.patch_size() as i64)?;
    let modes = c64_to_tensor(&ds.probe_modes(), device);
    let mut intensity = Tensor::zeros_like(&patches.abs());
    for k in 0..modes.size()[0] {
        intensity += physics::far_field_intensity(&physics::exit_waves(&modes.get(k), &patches)?);
    }
    Ok(intensity.sqrt().to_kind(Kind::Float))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lane_sum_matches_a_plain_float64_sum_for_every_tail_length() {
        for len in [0usize, 1, 7, 8, 9, 4096, 4099] {
            let values: Vec<f32> = (0..len).map(|i| ((i as f32) * 0.37).sin().abs() * 1e3).collect();
            let plain: f64 = values.iter().map(|&v| v as f64).sum();
            assert!((sum_in_lanes(&values) - plain).abs() <= 1e-12 * plain.max(1.0), "{len}");
        }
    }
}
