//! The `ptycho frc` workflow: read two reconstructions of interleaved halves
//! of one scan ([`crate::recon::interleaved_halves`]), measure their
//! half-set FRC ([`crate::metrics::half_set_frc`]) and write
//! `frc_halves.csv`, `frc_halves.json` and `frc_halves.png` into a folder,
//! every file atomically.
use std::path::{Path, PathBuf};

use polars::prelude::{Column, CsvWriter, DataFrame, SerWriter};
use serde::Serialize;

use crate::data::atomic::write_bytes_atomic;
use crate::data::product::read_recon_file;
use crate::error::{Error, Result};
use crate::metrics::{HalfSetAlignment, HalfSetConfig, HalfSetFrc, Resolution, half_set_frc};

/// Reads both reconstruction NPZ files (`object`, and `coverage` when
/// present: ours always has it) and measures their half-set FRC with `cfg`.
pub fn frc_halves_files(a: &Path, b: &Path, cfg: &HalfSetConfig) -> Result<HalfSetFrc> {
    let ra = read_recon_file(a)?;
    let rb = read_recon_file(b)?;
    if ra.object.dim() != rb.object.dim() {
        return Err(Error::shape(
            format!("object of {}", b.display()),
            format!("{:?} (the object of {})", ra.object.shape(), a.display()),
            format!("{:?}", rb.object.shape()),
        ));
    }
    half_set_frc(
        ra.object.view(),
        ra.coverage.as_ref().map(|c| c.view()),
        rb.object.view(),
        rb.coverage.as_ref().map(|c| c.view()),
        cfg,
    )
}

/// One row per ring: `ring, frequency_cycles_per_px, frc, half_bit_threshold,
/// n_pixels`, and `frequency_per_nm` when the pixel size is known.
pub fn frc_halves_table(r: &HalfSetFrc) -> Result<DataFrame> {
    let c = &r.curve;
    let mut cols = vec![
        Column::new("ring".into(), c.ring.iter().map(|&v| v as u64).collect::<Vec<_>>()),
        Column::new("frequency_cycles_per_px".into(), c.cycles_per_px.clone()),
        Column::new("frc".into(), c.frc.clone()),
        Column::new("half_bit_threshold".into(), r.half_bit.clone()),
        Column::new(
            "n_pixels".into(),
            c.n_pixels.iter().map(|&n| n as u64).collect::<Vec<_>>(),
        ),
    ];
    if let Some(f) = r.frequency_per_nm() {
        cols.push(Column::new("frequency_per_nm".into(), f));
    }
    DataFrame::new(c.frc.len(), cols).map_err(|e| Error::value("FRC table", e.to_string()))
}

/// What `frc_halves.json` holds.
#[derive(Debug, Serialize)]
pub struct FrcHalvesRecord<'a> {
    pub a: Option<&'a Path>,
    pub b: Option<&'a Path>,
    pub half_bit: &'a Resolution,
    pub one_seventh: &'a Resolution,
    pub pixel_size_m: Option<f64>,
    pub alignment: &'a HalfSetAlignment,
}

impl<'a> FrcHalvesRecord<'a> {
    pub fn new(r: &'a HalfSetFrc, a: Option<&'a Path>, b: Option<&'a Path>) -> Self {
        FrcHalvesRecord {
            a,
            b,
            half_bit: &r.half_bit_resolution,
            one_seventh: &r.one_seventh,
            pixel_size_m: r.pixel_size_m,
            alignment: &r.alignment,
        }
    }
}

/// What [`write_frc_halves`] wrote.
#[derive(Debug, Clone)]
pub struct FrcHalvesOutputs {
    pub csv: PathBuf,
    pub json: PathBuf,
    pub figure_png: PathBuf,
}

/// Writes `frc_halves.csv` ([`frc_halves_table`]), `frc_halves.json`
/// ([`FrcHalvesRecord`]) and `frc_halves.png` ([`crate::plot::frc_half_set`])
/// into `dir`, each atomically.
pub fn write_frc_halves(dir: &Path, r: &HalfSetFrc, sources: [Option<&Path>; 2]) -> Result<FrcHalvesOutputs> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let out = FrcHalvesOutputs {
        csv: dir.join("frc_halves.csv"),
        json: dir.join("frc_halves.json"),
        figure_png: dir.join("frc_halves.png"),
    };
    let mut table = frc_halves_table(r)?;
    let mut csv = Vec::new();
    CsvWriter::new(&mut csv)
        .finish(&mut table)
        .map_err(|e| Error::value("FRC table", e.to_string()))?;
    write_bytes_atomic(&out.csv, &csv)?;
    let json = serde_json::to_vec_pretty(&FrcHalvesRecord::new(r, sources[0], sources[1])).expect("record serialises");
    write_bytes_atomic(&out.json, &json)?;
    crate::plot::frc_half_set(r)?.save(&out.figure_png)?;
    Ok(out)
}
