//! The comparison workflow behind `ptycho compare`: read a truth (a
//! dataset's object, or a reference reconstruction: [`compare_with_reference`])
//! and reconstructions, align and measure each ([`crate::metrics`]), write
//! `metrics.csv`, `metrics.json`, `frc.csv` and `comparison.png` into a
//! folder, every file atomically.
use std::path::{Path, PathBuf};

use ndarray::Array2;
use num_complex::Complex32;
use serde::{Deserialize, Serialize};

use crate::data::atomic::write_bytes_atomic;
use crate::data::product::{read_recon, read_recon_file};
use crate::data::{Dataset, read_dataset};
use crate::error::{Error, Result};
use crate::metrics::{
    AlignConfig, Comparison, HalfSetConfig, PhaseScale, ScanRegion, compare_objects, fourier_shift, frc_table,
    metrics_table, register_halves, shift_coverage,
};
use crate::table::Table;

/// Half width of the default metric region around the scan positions: half
/// the stitched crop (PtychoPINN: `M/2` with `M = 20`).
pub const REGION_HALF_WIDTH_PX: f64 = 10.0;

/// The PtychoPINN alignment for `truth`: the scanned region (positions ±
/// [`REGION_HALF_WIDTH_PX`] + `margin_px`), sub-pixel registration, plane
/// phase removal, mean amplitude scaling. Which reconstructions the
/// registration is applied to is [`RegisterPolicy`]'s choice.
pub fn default_align(truth: &Dataset, margin_px: f64) -> Result<AlignConfig> {
    let object = truth_object(truth)?;
    let shape = [object.shape()[0], object.shape()[1]];
    let region = ScanRegion::from_positions(truth.positions_px.view(), REGION_HALF_WIDTH_PX, margin_px, shape)?;
    Ok(AlignConfig::ptychopinn(Some(region)))
}

/// Which pixels of the compared region are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScorePixels {
    /// Every pixel of the region (PtychoPINN's evaluation).
    #[default]
    Region,
    /// Only pixels inside the probe's support (the brightest pixels holding
    /// 90 % of its energy) at some scan position
    /// ([`crate::physics::illuminated_mask`]): with sparse or no overlap the
    /// region's gaps were never measured, and scoring them scores every
    /// method on guesses. For dense scans nearly the whole region.
    Illuminated,
}

impl ScorePixels {
    /// Parses `region` or `illuminated`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "region" => Ok(ScorePixels::Region),
            "illuminated" => Ok(ScorePixels::Illuminated),
            other => Err(Error::config(
                "score_pixels",
                format!("`{other}` is not region or illuminated"),
            )),
        }
    }
}

/// `cfg` with the mask `score` asks for on `truth`'s object grid (none for
/// [`ScorePixels::Region`]).
pub fn with_score_pixels(mut cfg: AlignConfig, truth: &Dataset, score: ScorePixels) -> Result<AlignConfig> {
    cfg.mask = match score {
        ScorePixels::Region => None,
        ScorePixels::Illuminated => {
            let object = truth_object(truth)?;
            let mask = crate::physics::illuminated_mask(
                truth.probe.view(),
                truth.positions_px.view(),
                [object.nrows(), object.ncols()],
            )?;
            Some(std::sync::Arc::new(mask))
        }
    };
    Ok(cfg)
}

/// Which reconstructions are registered on the truth (the alignment's
/// [`Registration`](crate::metrics::Registration)) before they are measured.
///
/// Our networks' reconstructions are stitched on the dataset's own grid, at
/// the scan positions: there is no shift to find, and a search can only
/// find a false one. The registration whitens the cross-power spectrum
/// (phase correlation), so every frequency weighs the same, and a
/// reconstruction without the truth's finest detail correlates with it on
/// noise: on the quickstart object the peak fell 19–75 px away for every
/// network and for a constant object, and scored them below the
/// constant. PtychoPINN's study registers the iterative reconstruction
/// only (`--register-ptychi-only`); `Auto` does the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegisterPolicy {
    /// Every reconstruction except our networks' inferences, also when a
    /// solver with a fixed probe refined them ([`crate::recon::on_dataset_grid`]):
    /// iterative solvers (whose refined probe can drift) and other tools' files.
    #[default]
    Auto,
    /// Every reconstruction.
    All,
    /// None.
    None,
}

impl RegisterPolicy {
    /// Whether a reconstruction recorded as coming from `source` (our
    /// `_metadata.source`; `None` for another tool's file) is registered.
    pub fn registers(self, source: Option<&str>) -> bool {
        match self {
            RegisterPolicy::All => true,
            RegisterPolicy::None => false,
            RegisterPolicy::Auto => !source.is_some_and(crate::recon::on_dataset_grid),
        }
    }

    /// Parses `auto`, `all` or `none`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(RegisterPolicy::Auto),
            "all" => Ok(RegisterPolicy::All),
            "none" => Ok(RegisterPolicy::None),
            other => Err(Error::config("register", format!("`{other}` is not auto, all or none"))),
        }
    }
}

fn truth_object(truth: &Dataset) -> Result<&Array2<Complex32>> {
    truth
        .object
        .as_ref()
        .ok_or_else(|| Error::value("truth", "the dataset has no ground-truth object (objectGuess)"))
}

/// Compares each labelled object with the truth's object: with `cfg`
/// where `register[i]` is true, else with `cfg` without its registration
/// (a missing flag counts as false). The unregistered lose the
/// registration's border crop to the trim instead, so every
/// reconstruction is measured on the same pixels.
pub fn compare_all(
    truth: &Dataset,
    recons: &[(String, Array2<Complex32>)],
    cfg: &AlignConfig,
    register: &[bool],
) -> Result<Vec<Comparison>> {
    compare_all_objects(truth_object(truth)?, recons, cfg, register)
}

/// [`compare_all`] against any object on the reconstructions' grid (a
/// dataset's truth, or a reference reconstruction).
pub fn compare_all_objects(
    object: &Array2<Complex32>,
    recons: &[(String, Array2<Complex32>)],
    cfg: &AlignConfig,
    register: &[bool],
) -> Result<Vec<Comparison>> {
    let unregistered = AlignConfig {
        registration: None,
        trim_px: cfg.trim_px + cfg.registration.map_or(0, |r| r.border_crop_px),
        ..cfg.clone()
    };
    recons
        .iter()
        .enumerate()
        .map(|(i, (label, o))| {
            let c = if register.get(i).copied().unwrap_or(false) {
                cfg
            } else {
                &unregistered
            };
            compare_objects(object, o, c).map_err(|e| Error::value(format!("reconstruction `{label}`"), e.to_string()))
        })
        .collect()
}

/// One row of `metrics.json`.
#[derive(Debug, Serialize)]
pub struct CompareRecord<'a> {
    pub label: &'a str,
    pub source: Option<&'a Path>,
    pub amplitude: &'a crate::metrics::ImageMetrics,
    pub phase: &'a crate::metrics::ImageMetrics,
    pub alignment: &'a crate::metrics::Alignment,
}

/// What `write_comparison` wrote.
#[derive(Debug, Clone)]
pub struct CompareOutputs {
    pub metrics_csv: PathBuf,
    pub metrics_json: PathBuf,
    pub frc_csv: PathBuf,
    pub figure_png: PathBuf,
    pub metrics: Table,
}

/// Writes the tables, the JSON record and the comparison figure into `dir`.
pub fn write_comparison(
    dir: &Path,
    truth: &Dataset,
    recons: &[(String, Array2<Complex32>)],
    sources: &[Option<PathBuf>],
    comparisons: &[Comparison],
) -> Result<CompareOutputs> {
    write_comparison_objects(dir, truth_object(truth)?, "truth", recons, sources, comparisons)
}

/// [`write_comparison`] with the object the reconstructions were compared
/// with (a dataset's truth, or a reference reconstruction) given directly;
/// `object_name` names it in the figure ("truth", "reference").
pub fn write_comparison_objects(
    dir: &Path,
    object: &Array2<Complex32>,
    object_name: &str,
    recons: &[(String, Array2<Complex32>)],
    sources: &[Option<PathBuf>],
    comparisons: &[Comparison],
) -> Result<CompareOutputs> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let rows: Vec<(String, &Comparison)> = recons
        .iter()
        .zip(comparisons)
        .map(|((label, _), c)| (label.clone(), c))
        .collect();
    let metrics = metrics_table(&rows)?;
    let frc = frc_table(&rows)?;
    let out = CompareOutputs {
        metrics_csv: dir.join("metrics.csv"),
        metrics_json: dir.join("metrics.json"),
        frc_csv: dir.join("frc.csv"),
        figure_png: dir.join("comparison.png"),
        metrics: metrics.clone(),
    };
    write_bytes_atomic(&out.metrics_csv, metrics.to_csv().as_bytes())?;
    write_bytes_atomic(&out.frc_csv, frc.to_csv().as_bytes())?;
    let records: Vec<CompareRecord> = rows
        .iter()
        .zip(sources.iter().chain(std::iter::repeat(&None)))
        .map(|((label, c), src)| CompareRecord {
            label,
            source: src.as_deref(),
            amplitude: &c.amplitude,
            phase: &c.phase,
            alignment: &c.alignment,
        })
        .collect();
    let json = serde_json::to_vec_pretty(&records).expect("records serialise");
    write_bytes_atomic(&out.metrics_json, &json)?;
    let panels: Vec<(&str, &Array2<Complex32>)> = recons.iter().map(|(l, o)| (l.as_str(), o)).collect();
    crate::plot::comparison_with(object_name, object, &panels)?.save(&out.figure_png)?;
    Ok(out)
}

/// `ptycho compare`: reads the truth dataset and each reconstruction NPZ
/// (`object`), compares with [`default_align`], `phase_scale`, the
/// registration `policy` and the pixels `score` keeps, writes into `dir`.
pub fn compare_files(
    truth_path: &Path,
    recons: &[(String, PathBuf)],
    dir: &Path,
    margin_px: f64,
    phase_scale: PhaseScale,
    policy: RegisterPolicy,
    score: ScorePixels,
) -> Result<CompareOutputs> {
    if recons.is_empty() {
        return Err(Error::config("recon", "give at least one reconstruction"));
    }
    let truth = read_dataset(truth_path)?;
    let cfg = with_score_pixels(
        AlignConfig {
            phase_scale,
            ..default_align(&truth, margin_px)?
        },
        &truth,
        score,
    )?;
    let mut objects = Vec::with_capacity(recons.len());
    let mut register = Vec::with_capacity(recons.len());
    for (label, path) in recons {
        let (object, source) = read_recon(path)?;
        register.push(policy.registers(source.as_deref()));
        objects.push((label.clone(), object));
    }
    let comparisons = compare_all(&truth, &objects, &cfg, &register)?;
    let sources: Vec<Option<PathBuf>> = recons.iter().map(|(_, p)| Some(p.clone())).collect();
    write_comparison(dir, &truth, &objects, &sources, &comparisons)
}

/// `ptycho compare --reference`: compares each reconstruction NPZ with a
/// reference reconstruction (another tool's, or ours; `object`, and
/// `coverage` when present) on the same grid instead of a dataset's truth,
/// through [`compare_objects`] as [`compare_files`] does (mean amplitude
/// scale, plane phase removal, `phase_scale`; [`AlignConfig::ptychopinn`]).
///
/// - **Registration**: both sides are reconstructions (noisy beyond their
///   resolution, perhaps with a phase ramp between them), so a
///   reconstruction `policy` registers is shifted onto the reference as the
///   half-set FRC registers its halves ([`register_halves`]: plain
///   cross-correlation of phase-ramp-blind neighbour products, refined on
///   the phase-aligned objects) on the full grid with its coverage, before
///   the comparison; the shift is recorded in `alignment.shift_px`.
///   [`RegisterPolicy::Auto`] registers every pair but two of our networks'
///   inferences (both stitched on the same dataset grid).
/// - **Pixels**: those every file covers after the shift (each file's
///   `coverage` at least `coverage_fraction` of its maximum; a file without
///   coverage covers every pixel). The region is their bounding box and
///   only they are scored (the configuration's mask), so every
///   reconstruction is measured on the same pixels.
pub fn compare_with_reference(
    reference_path: &Path,
    recons: &[(String, PathBuf)],
    dir: &Path,
    coverage_fraction: f64,
    phase_scale: PhaseScale,
    policy: RegisterPolicy,
) -> Result<CompareOutputs> {
    if recons.is_empty() {
        return Err(Error::config("recon", "give at least one reconstruction"));
    }
    // another tool's frame may sit anywhere on the grid: no shift limit
    let half_set = HalfSetConfig {
        coverage_fraction,
        max_shift_px: None,
        ..HalfSetConfig::default()
    };
    half_set.validate()?;
    let reference = read_recon_file(reference_path)?;
    let shape = reference.object.dim();
    let covered = |c: &Option<Array2<f32>>, path: &Path| -> Result<Option<Array2<bool>>> {
        let Some(c) = c else { return Ok(None) };
        let max = c.fold(0.0f32, |m, &v| m.max(v));
        if max <= 0.0 || !max.is_finite() {
            return Err(Error::format(path, "`coverage` is zero everywhere (or not finite)"));
        }
        let t = coverage_fraction as f32 * max;
        Ok(Some(c.mapv(|v| v >= t)))
    };
    let mut mask = Array2::from_elem(shape, true);
    let mut keep = |m: Option<Array2<bool>>| {
        if let Some(m) = m {
            ndarray::Zip::from(&mut mask).and(&m).for_each(|k, &c| *k &= c);
        }
    };
    keep(covered(&reference.coverage, reference_path)?);
    let mut objects = Vec::with_capacity(recons.len());
    let mut shifts = Vec::with_capacity(recons.len());
    for (label, path) in recons {
        let mut r = read_recon_file(path)?;
        if r.object.dim() != shape {
            return Err(Error::shape(
                format!(
                    "object of {} (reconstructions are compared on one grid)",
                    path.display()
                ),
                format!("{:?} (the reference's)", reference.object.shape()),
                format!("{:?}", r.object.shape()),
            ));
        }
        let shift = if policy.registers(r.source.as_deref()) || policy.registers(reference.source.as_deref()) {
            let shift = register_halves(
                reference.object.view(),
                reference.coverage.as_ref().map(|c| c.view()),
                r.object.view(),
                r.coverage.as_ref().map(|c| c.view()),
                &half_set,
            )
            .map_err(|e| Error::value(format!("registering `{label}` on the reference"), e.to_string()))?;
            r.object = fourier_shift(r.object.view(), shift);
            r.coverage = r.coverage.map(|c| shift_coverage(c.view(), shift));
            Some(shift)
        } else {
            None
        };
        keep(covered(&r.coverage, path)?);
        shifts.push(shift);
        objects.push((label.clone(), r.object));
    }
    let region = ScanRegion::from_mask(mask.view(), "pixels every file covers")?;
    let cfg = AlignConfig {
        phase_scale,
        mask: Some(std::sync::Arc::new(mask)),
        ..AlignConfig::ptychopinn(Some(region))
    };
    // registered above, on the full grid: the comparison only crops and trims
    let mut comparisons = compare_all_objects(&reference.object, &objects, &cfg, &vec![false; objects.len()])?;
    for (c, s) in comparisons.iter_mut().zip(&shifts) {
        c.alignment.shift_px = *s;
    }
    let sources: Vec<Option<PathBuf>> = recons.iter().map(|(_, p)| Some(p.clone())).collect();
    write_comparison_objects(dir, &reference.object, "reference", &objects, &sources, &comparisons)
}
