//! The comparison workflow behind `ptycho compare`: read a truth and
//! reconstructions, align and measure each ([`crate::metrics`]), write
//! `metrics.csv`, `metrics.json`, `frc.csv` and `comparison.png` into a
//! folder, every file atomically.
use std::path::{Path, PathBuf};

use ndarray::Array2;
use num_complex::Complex32;
use polars::prelude::{CsvWriter, DataFrame, SerWriter};
use serde::Serialize;

use crate::data::atomic::write_bytes_atomic;
use crate::data::product::read_recon_object;
use crate::data::{Dataset, read_dataset};
use crate::error::{Error, Result};
use crate::metrics::{AlignConfig, Comparison, PhaseScale, ScanRegion, compare_objects, frc_table, metrics_table};

/// Half width of the default metric region around the scan positions: half
/// the stitched crop (PtychoPINN: `M/2` with `M = 20`).
pub const REGION_HALF_WIDTH_PX: f64 = 10.0;

/// The PtychoPINN alignment for `truth`: the scanned region (positions ±
/// [`REGION_HALF_WIDTH_PX`] + `margin_px`), sub-pixel registration, plane
/// phase removal, mean amplitude scaling.
pub fn default_align(truth: &Dataset, margin_px: f64) -> Result<AlignConfig> {
    let object = truth_object(truth)?;
    let shape = [object.shape()[0], object.shape()[1]];
    let region = ScanRegion::from_positions(truth.positions_px.view(), REGION_HALF_WIDTH_PX, margin_px, shape)?;
    Ok(AlignConfig::ptychopinn(Some(region)))
}

fn truth_object(truth: &Dataset) -> Result<&Array2<Complex32>> {
    truth
        .object
        .as_ref()
        .ok_or_else(|| Error::value("truth", "the dataset has no ground-truth object (objectGuess)"))
}

/// Compares each labelled object with the truth's object.
pub fn compare_all(
    truth: &Dataset,
    recons: &[(String, Array2<Complex32>)],
    cfg: &AlignConfig,
) -> Result<Vec<Comparison>> {
    let object = truth_object(truth)?;
    recons
        .iter()
        .map(|(label, o)| {
            compare_objects(object, o, cfg)
                .map_err(|e| Error::value(format!("reconstruction `{label}`"), e.to_string()))
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
    pub metrics: DataFrame,
}

fn csv_bytes(df: &mut DataFrame) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    CsvWriter::new(&mut buf)
        .finish(df)
        .map_err(|e| Error::value("table", e.to_string()))?;
    Ok(buf)
}

/// Writes the tables, the JSON record and the comparison figure into `dir`.
pub fn write_comparison(
    dir: &Path,
    truth: &Dataset,
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
    let mut metrics = metrics_table(&rows)?;
    let mut frc = frc_table(&rows)?;
    let out = CompareOutputs {
        metrics_csv: dir.join("metrics.csv"),
        metrics_json: dir.join("metrics.json"),
        frc_csv: dir.join("frc.csv"),
        figure_png: dir.join("comparison.png"),
        metrics: metrics.clone(),
    };
    write_bytes_atomic(&out.metrics_csv, &csv_bytes(&mut metrics)?)?;
    write_bytes_atomic(&out.frc_csv, &csv_bytes(&mut frc)?)?;
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
    let object = truth_object(truth)?;
    let panels: Vec<(&str, &Array2<Complex32>)> = recons.iter().map(|(l, o)| (l.as_str(), o)).collect();
    crate::plot::comparison(object, &panels)?.save(&out.figure_png)?;
    Ok(out)
}

/// `ptycho compare`: reads the truth dataset and each reconstruction NPZ
/// (`object`), compares with [`default_align`] and `phase_scale`, writes
/// into `dir`.
pub fn compare_files(
    truth_path: &Path,
    recons: &[(String, PathBuf)],
    dir: &Path,
    margin_px: f64,
    phase_scale: PhaseScale,
) -> Result<CompareOutputs> {
    if recons.is_empty() {
        return Err(Error::config("recon", "give at least one reconstruction"));
    }
    let truth = read_dataset(truth_path)?;
    let cfg = AlignConfig {
        phase_scale,
        ..default_align(&truth, margin_px)?
    };
    let objects: Vec<(String, Array2<Complex32>)> = recons
        .iter()
        .map(|(l, p)| read_recon_object(p).map(|o| (l.clone(), o)))
        .collect::<Result<_>>()?;
    let comparisons = compare_all(&truth, &objects, &cfg)?;
    let sources: Vec<Option<PathBuf>> = recons.iter().map(|(_, p)| Some(p.clone())).collect();
    write_comparison(dir, &truth, &objects, &sources, &comparisons)
}
