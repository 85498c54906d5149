//! The suite's results: a JSON record (with the suite and the machine), a
//! CSV table, and a markdown table for docs/quality.md.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::config::QualitySuite;
use super::run::ArmResult;
use crate::bench::Machine;
use crate::data::atomic::write_bytes_atomic;
use crate::error::{Error, Result};

/// Everything a suite run produced (`quality-<unix time>.json`).
#[derive(Debug, Clone, Serialize)]
pub struct QualityReport {
    /// `ptycho bench quality …` as run.
    pub command: String,
    pub suite: QualitySuite,
    pub machine: Machine,
    pub crate_version: String,
    /// Seconds since the Unix epoch when the run finished.
    pub finished_unix: u64,
    pub seconds: f64,
    pub rows: Vec<ArmResult>,
}

/// The CSV header of [`write_results`]' table.
const CSV_HEADER: &str = "case,arm,status,amp_ssim,phase_ssim,amp_ms_ssim,phase_ms_ssim,amp_psnr,phase_psnr,\
                          phase_frc50,phase_ssim_span,scored_fraction,seconds_train,seconds_reconstruct,detail,error";

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.4}"))
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Writes `quality-<finished_unix>.json` and `.csv` into `dir` and returns
/// their paths.
pub fn write_results(report: &QualityReport, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let stem = format!("quality-{}-{}", report.suite.name, report.finished_unix);
    let json = dir.join(format!("{stem}.json"));
    let csv = dir.join(format!("{stem}.csv"));
    write_bytes_atomic(&json, &serde_json::to_vec_pretty(report).expect("report serialises"))?;
    let mut text = String::from(CSV_HEADER);
    text.push('\n');
    for r in &report.rows {
        let _ = writeln!(
            text,
            "{},{},{},{},{},{},{},{},{},{},{},{},{:.1},{:.2},{},{}",
            r.case,
            r.arm,
            r.status,
            opt(r.amp_ssim),
            opt(r.phase_ssim),
            opt(r.amp_ms_ssim),
            opt(r.phase_ms_ssim),
            opt(r.amp_psnr),
            opt(r.phase_psnr),
            opt(r.phase_frc50),
            opt(r.phase_ssim_span),
            opt(r.scored_fraction),
            r.seconds_train,
            r.seconds_reconstruct,
            quoted(&r.detail),
            quoted(r.error.as_deref().unwrap_or(""))
        );
    }
    write_bytes_atomic(&csv, text.as_bytes())?;
    Ok((json, csv))
}

/// One markdown table: a row per case, for each arm `amp / phase` SSIM
/// (the best arm of each component in bold) and its reconstruction time
/// (inference or solver, without training: the CSV has both).
pub fn markdown_table(rows: &[ArmResult]) -> String {
    let mut arms: Vec<&str> = Vec::new();
    let mut cases: Vec<&str> = Vec::new();
    for r in rows {
        if !arms.contains(&r.arm.as_str()) {
            arms.push(&r.arm);
        }
        if !cases.contains(&r.case.as_str()) {
            cases.push(&r.case);
        }
    }
    let mut md = String::from("| case |");
    for a in &arms {
        let _ = write!(md, " {a} |");
    }
    md.push_str("\n|---|");
    for _ in &arms {
        md.push_str("---|");
    }
    md.push('\n');
    for c in &cases {
        let of_case: Vec<&ArmResult> = rows.iter().filter(|r| r.case == *c).collect();
        // the oracle is a reference, not a contestant
        let best = |get: fn(&ArmResult) -> Option<f64>| {
            of_case
                .iter()
                .filter(|r| r.arm != "epie-oracle")
                .filter_map(|r| get(r))
                .fold(f64::NEG_INFINITY, f64::max)
        };
        let (best_a, best_p) = (best(|r| r.amp_ssim), best(|r| r.phase_ssim));
        let _ = write!(md, "| {c} |");
        for a in &arms {
            match of_case.iter().find(|r| r.arm == *a) {
                None => md.push_str(" |"),
                Some(r) if r.status != "ok" => md.push_str(" failed |"),
                Some(r) => {
                    let fmt = |v: Option<f64>, best: f64| match v {
                        Some(v) if v == best && r.arm != "epie-oracle" => format!("**{v:.3}**"),
                        Some(v) => format!("{v:.3}"),
                        None => "—".into(),
                    };
                    let _ = write!(
                        md,
                        " {} / {} ({:.1} s) |",
                        fmt(r.amp_ssim, best_a),
                        fmt(r.phase_ssim, best_p),
                        r.seconds_reconstruct
                    );
                }
            }
        }
        md.push('\n');
    }
    md
}
