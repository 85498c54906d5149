//! `ptycho bench measured`: our iterative solver against pty-chi on a
//! measured scan, both tools' time and half-set FRC in one table row.
//!
//! The two interleaved halves of the scan (`interleaved_halves`) are each
//! reconstructed by both tools with the same number of epochs, the same
//! number of incoherent probe modes, probe refinement, and the same threads:
//! ours is ePIE (`ptycho reconstruct --refine-probe --probe-modes K`),
//! pty-chi's is LSQML (`benches/measured_ptychi.py`, its defaults otherwise,
//! run in the optional peer environment). Times are the epochs only, per
//! half (both tools report them); the FRC is each tool's half A against its
//! half B (`frc_halves`), summarised by its threshold crossings and mean
//! over two frequency bands, in the row's name.
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{BenchRow, ReferenceTimes, alternate, run_script};
use crate::error::{Error, Result};
use crate::metrics::{HalfSetConfig, HalfSetFrc};
use crate::recon::iterative::{IterativeConfig, reconstruct_iterative};
use crate::recon::{Reconstruction, interleaved_halves};

/// Settings of `ptycho bench measured`.
#[derive(Debug, Clone)]
pub struct MeasuredBench {
    /// A measured scan in our NPZ format (`make measured-data`).
    pub data: PathBuf,
    pub epochs: usize,
    pub probe_modes: usize,
    /// Rounds of (ours on both halves, pty-chi on both halves).
    pub rounds: usize,
    pub threads: usize,
    pub device: tch::Device,
    /// Python of the peer environment with pty-chi 2.2.
    pub peer_python: PathBuf,
}

impl Default for MeasuredBench {
    fn default() -> Self {
        MeasuredBench {
            data: PathBuf::from("data/measured/siemens_star.npz"),
            epochs: 50,
            probe_modes: 3,
            rounds: 1,
            threads: super::default_threads(),
            device: tch::Device::Cpu,
            peer_python: default_peer_python(),
        }
    }
}

/// `$PTYCHO_PEER_PYTHON`, else the crate's `.venv-peers/bin/python`.
pub fn default_peer_python() -> PathBuf {
    std::env::var_os("PTYCHO_PEER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-peers/bin/python"))
}

/// What `measured_ptychi.py` prints.
#[derive(Debug, Deserialize)]
struct PtychiOut {
    seconds: f64,
}

/// Both halves' pty-chi times.
struct PtychiHalves {
    seconds: Vec<f64>,
}

impl ReferenceTimes for PtychiHalves {
    fn seconds(&self) -> &[f64] {
        &self.seconds
    }
}

/// The frequency bands the row reports (cycles/px).
pub const BANDS: [(f64, f64); 2] = [(0.1, 0.25), (0.25, 0.5)];

/// A half-set FRC in a few words: where it crosses the half-bit threshold
/// (or that it does not) and its mean over [`BANDS`].
pub fn summarise_frc(frc: &HalfSetFrc) -> String {
    let crossing = if frc.half_bit_resolution.crossed {
        format!("half-bit at {:.1} px", frc.half_bit_resolution.resolution_px)
    } else {
        "no half-bit crossing".to_string()
    };
    let bands: Vec<String> = BANDS
        .iter()
        .map(|&(lo, hi)| format!("{:.2}", frc.curve.band_mean(lo, hi)))
        .collect();
    format!("{crossing}, mean {}", bands.join("/"))
}

/// Runs the benchmark: one row, epochs per second per half, both tools'
/// half-set FRC in its name.
pub fn measured_bench(b: &MeasuredBench) -> Result<Vec<BenchRow>> {
    if !b.data.exists() {
        return Err(Error::config(
            "data",
            format!(
                "{} does not exist: `make measured-data` fetches and converts the measured scans",
                b.data.display()
            ),
        ));
    }
    if !b.peer_python.exists() {
        return Err(Error::config(
            "peer python",
            format!(
                "{} does not exist: pty-chi runs in an optional environment \
                 (`python3 -m venv .venv-peers && .venv-peers/bin/pip install ptychi==2.2.0`), \
                 or set PTYCHO_PEER_PYTHON",
                b.peer_python.display()
            ),
        ));
    }
    tch::set_num_threads(b.threads as i32);
    let ds = crate::data::read_dataset(&b.data)?;
    let (half_a, half_b) = interleaved_halves(&ds);
    let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("temporary folder"), e))?;
    let files = [dir.path().join("half_a.npz"), dir.path().join("half_b.npz")];
    crate::data::write_npz(&half_a, &files[0])?;
    crate::data::write_npz(&half_b, &files[1])?;

    let solver = IterativeConfig {
        iterations: Some(b.epochs),
        refine_probe: true,
        probe_modes: Some(b.probe_modes),
        tolerance: 0.0,
        device: super::torch_device_name(b.device),
        ..IterativeConfig::epie()
    };
    let mut ours: Option<[Reconstruction; 2]> = None;
    let our_round = || -> Result<Vec<f64>> {
        let mut seconds = Vec::with_capacity(2);
        let mut recons = Vec::with_capacity(2);
        for half in [&half_a, &half_b] {
            let out = reconstruct_iterative(half, &solver, &mut |_| {})?;
            let summary = out.reconstruction.metadata.solver.as_ref().expect("a solver's summary");
            seconds.push(summary.seconds_iterations);
            recons.push(out.reconstruction);
        }
        ours = Some(recons.try_into().expect("two halves"));
        Ok(seconds)
    };
    let outputs = [dir.path().join("ptychi_a.npz"), dir.path().join("ptychi_b.npz")];
    let reference_round = || -> Result<PtychiHalves> {
        let mut seconds = Vec::with_capacity(2);
        for (input, output) in files.iter().zip(&outputs) {
            let args = [
                input.display().to_string(),
                "--epochs".into(),
                b.epochs.to_string(),
                "--probe-modes".into(),
                b.probe_modes.to_string(),
                "--threads".into(),
                b.threads.to_string(),
                "--out".into(),
                output.display().to_string(),
                "--quiet".into(),
            ];
            let out: PtychiOut = run_script(
                &b.peer_python,
                "measured_ptychi.py",
                &args,
                &[("OMP_NUM_THREADS", b.threads.to_string())],
            )?;
            seconds.push(out.seconds);
        }
        Ok(PtychiHalves { seconds })
    };
    let (row, _) = alternate(b.rounds, our_round, reference_round)?.into_row(
        String::new(),
        "epochs/s",
        b.epochs as f64,
        "pty-chi 2.2 LSQML (benches/measured_ptychi.py)",
        b.threads,
    );
    let [a, bb] = ours.expect("at least one round");
    let cfg = HalfSetConfig::default();
    let our_frc = crate::resolution::frc_halves(&a, &bb, &cfg)?;
    let their_frc = crate::resolution::frc_halves_files(&outputs[0], &outputs[1], &cfg)?;
    let name = format!(
        "{} halves {}+{} patterns, {} modes, {} epochs; half-set FRC ours: {}; pty-chi: {}",
        b.data.file_stem().map_or("scan".into(), |s| s.to_string_lossy()),
        half_a.n_images(),
        half_b.n_images(),
        b.probe_modes,
        b.epochs,
        summarise_frc(&our_frc),
        summarise_frc(&their_frc),
    );
    Ok(vec![BenchRow {
        name,
        device: format!("{:?}", b.device),
        ..row
    }])
}
