//! The `ptycho frc` workflow: read two reconstructions of interleaved halves
//! of one scan ([`crate::recon::interleaved_halves`]), measure their
//! half-set FRC ([`crate::metrics::half_set_frc`]) and write
//! `frc_halves.csv`, `frc_halves.json` and `frc_halves.png` into a folder,
//! every file atomically.
use std::path::{Path, PathBuf};

use ndarray::{ArrayView2, s};
use num_complex::Complex32;
use serde::Serialize;

use crate::data::atomic::write_bytes_atomic;
use crate::data::product::read_recon_file;
use crate::error::{Error, Result};
use crate::metrics::{HalfSetAlignment, HalfSetConfig, HalfSetFrc, Resolution, half_set_frc};
use crate::recon::Reconstruction;
use crate::table::{Column, Table};

/// Reads both reconstruction NPZ files (`object`, and `coverage` when
/// present: ours always has it) and measures their half-set FRC with `cfg`
/// ([`frc_halves_views`]).
pub fn frc_halves_files(a: &Path, b: &Path, cfg: &HalfSetConfig) -> Result<HalfSetFrc> {
    let ra = read_recon_file(a)?;
    let rb = read_recon_file(b)?;
    frc_halves_views(
        ra.object.view(),
        ra.coverage.as_ref().map(|c| c.view()),
        rb.object.view(),
        rb.coverage.as_ref().map(|c| c.view()),
        cfg,
    )
}

/// The half-set FRC of two reconstructions of interleaved halves of one
/// scan (in a notebook: the solvers' [`Reconstruction`]s), with `cfg`.
pub fn frc_halves(a: &Reconstruction, b: &Reconstruction, cfg: &HalfSetConfig) -> Result<HalfSetFrc> {
    frc_halves_views(
        a.object.view(),
        Some(a.coverage.view()),
        b.object.view(),
        Some(b.coverage.view()),
        cfg,
    )
}

/// [`half_set_frc`] of two halves' objects and coverages. Two halves of one
/// scan reconstructed separately can get canvases a pixel or two apart
/// (each half's canvas reaches its own outermost position), but both start
/// at the frame's origin ([`crate::data::product::canvas_shape`]), so they
/// are compared on their common top-left extent. Canvases further apart
/// than [`MAX_CANVAS_MISMATCH_PX`] are not halves of one scan: an error.
pub fn frc_halves_views(
    a: ArrayView2<'_, Complex32>,
    coverage_a: Option<ArrayView2<'_, f32>>,
    b: ArrayView2<'_, Complex32>,
    coverage_b: Option<ArrayView2<'_, f32>>,
    cfg: &HalfSetConfig,
) -> Result<HalfSetFrc> {
    let (ha, wa) = a.dim();
    let (hb, wb) = b.dim();
    if ha.abs_diff(hb) > MAX_CANVAS_MISMATCH_PX || wa.abs_diff(wb) > MAX_CANVAS_MISMATCH_PX {
        return Err(Error::shape(
            "second half's object (halves of one scan share a canvas)",
            format!("{:?} (the first half's) within {MAX_CANVAS_MISMATCH_PX} px", a.shape()),
            format!("{:?}", b.shape()),
        ));
    }
    let (h, w) = (ha.min(hb), wa.min(wb));
    let crop = s![..h, ..w];
    half_set_frc(
        a.slice(crop),
        coverage_a.map(|c| c.slice_move(crop)),
        b.slice(crop),
        coverage_b.map(|c| c.slice_move(crop)),
        cfg,
    )
}

/// The most two halves' canvases may differ by, per axis, before
/// [`frc_halves_files`] refuses them: a half's outermost position can sit up
/// to a scan step inside the whole scan's.
pub const MAX_CANVAS_MISMATCH_PX: usize = 64;

/// One row per ring: `ring, frequency_cycles_per_px, frc, half_bit_threshold,
/// n_pixels`, and `frequency_per_nm` when the pixel size is known.
pub fn frc_halves_table(r: &HalfSetFrc) -> Result<Table> {
    let c = &r.curve;
    let mut cols = vec![
        Column::new("ring", c.ring.iter().map(|&v| v as i64).collect::<Vec<_>>()),
        Column::new("frequency_cycles_per_px", c.cycles_per_px.clone()),
        Column::new("frc", c.frc.clone()),
        Column::new("half_bit_threshold", r.half_bit.clone()),
        Column::new("n_pixels", c.n_pixels.iter().map(|&n| n as i64).collect::<Vec<_>>()),
    ];
    if let Some(f) = r.frequency_per_nm() {
        cols.push(Column::new("frequency_per_nm", f));
    }
    Table::new(cols)
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
    write_bytes_atomic(&out.csv, frc_halves_table(r)?.to_csv().as_bytes())?;
    let json = serde_json::to_vec_pretty(&FrcHalvesRecord::new(r, sources[0], sources[1])).expect("record serialises");
    write_bytes_atomic(&out.json, &json)?;
    crate::plot::frc_half_set(r)?.save(&out.figure_png)?;
    Ok(out)
}
