//! Benchmarks that compare against a reference measured in the same run
//! (numpy scripts under `benches/`). Figures are medians of repeated runs;
//! no benchmark is a test.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::simulate::{ObjectKind, ScanKind, SimConfig, simulate_on};

/// One row of a benchmark table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchRow {
    pub name: String,
    pub unit: String,
    pub ours: f64,
    pub reference: f64,
    pub reference_name: String,
    /// ours / reference (higher is better for rates).
    pub ratio: f64,
    pub ours_threads: usize,
    pub ours_peak_rss_mb: f64,
    pub reference_peak_rss_mb: f64,
    pub ours_seconds: Vec<f64>,
    pub reference_seconds: Vec<f64>,
}

/// Settings of `ptycho bench simulate`.
#[derive(Debug, Clone)]
pub struct SimulateBench {
    pub n_images: usize,
    pub size_px: usize,
    pub repeats: usize,
    pub threads: usize,
    /// One row pair (raster, random) per dose.
    pub doses_photons: Vec<f64>,
    /// Python with numpy (default: the project's `.venv`).
    pub python: PathBuf,
}

impl Default for SimulateBench {
    fn default() -> Self {
        SimulateBench {
            n_images: 4096,
            size_px: 64,
            repeats: 5,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            // the middle of the dose study's range, and a high dose where
            // most pixels need the large-rate Poisson sampler
            doses_photons: vec![1e4, 1e6],
            python: default_python(),
        }
    }
}

/// The project's Python (`.venv/bin/python`), or `PTYCHO_PYTHON`.
pub fn default_python() -> PathBuf {
    std::env::var_os("PTYCHO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
}

fn benches_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches")
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        0.5 * (s[m - 1] + s[m])
    }
}

/// Peak resident memory of this process (VmHWM), MB.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The configuration both sides simulate: lines object, zone-plate probe,
/// N = 64 and enough object for `n_images` raster positions at 4 px.
pub fn bench_config(b: &SimulateBench, scan: ScanKind, dose_photons: f64) -> SimConfig {
    let per_side = (b.n_images as f64).sqrt().ceil() as usize;
    let side = b.size_px + 1 + 4 * per_side;
    let mut cfg = SimConfig {
        seed: 7,
        size_px: b.size_px,
        object_size_px: side,
        dose_photons: Some(dose_photons),
        ..SimConfig::default()
    };
    cfg.object.kind = ObjectKind::Lines;
    cfg.scan.kind = scan;
    cfg.scan.spacing_px = 4.0;
    cfg.scan.n_images = Some(b.n_images);
    cfg
}

#[derive(Deserialize)]
struct ReferenceOut {
    seconds: Vec<f64>,
    peak_rss_mb: f64,
}

/// Runs the simulation benchmark: raster (integer positions) and random
/// (fractional, bilinear) scans, ours on CPU against numpy.
pub fn simulate_bench(b: &SimulateBench) -> Result<Vec<BenchRow>> {
    tch::set_num_threads(b.threads as i32);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(b.threads)
        .build()
        .map_err(|e| Error::External {
            program: "rayon".into(),
            reason: e.to_string(),
        })?;
    let mut rows = Vec::new();
    let cases = b
        .doses_photons
        .iter()
        .flat_map(|&d| [(ScanKind::Raster, "raster", d), (ScanKind::Random, "random", d)]);
    for (scan, name, dose) in cases {
        let cfg = bench_config(b, scan, dose);
        // warm-up (libtorch allocations, FFT plans), not timed
        pool.install(|| {
            simulate_on(
                &SimConfig {
                    scan: crate::simulate::ScanConfig {
                        n_images: Some(64),
                        ..cfg.scan.clone()
                    },
                    ..cfg.clone()
                },
                tch::Device::Cpu,
            )
        })?;
        let mut ours = Vec::with_capacity(b.repeats);
        for _ in 0..b.repeats {
            let t = Instant::now();
            let ds = pool.install(|| simulate_on(&cfg, tch::Device::Cpu))?;
            ours.push(t.elapsed().as_secs_f64());
            assert_eq!(ds.n_images(), b.n_images);
        }
        let reference = run_reference(b, name, cfg.object_size_px, dose)?;
        let rate = |s: &[f64]| b.n_images as f64 / median(s);
        rows.push(BenchRow {
            name: format!("simulate {name} N={} n={} dose={dose:.0e}", b.size_px, b.n_images),
            unit: "patterns/s".into(),
            ours: rate(&ours),
            reference: rate(&reference.seconds),
            reference_name: "numpy (benches/reference_simulate.py)".into(),
            ratio: rate(&ours) / rate(&reference.seconds),
            ours_threads: b.threads,
            ours_peak_rss_mb: peak_rss_mb(),
            reference_peak_rss_mb: reference.peak_rss_mb,
            ours_seconds: ours,
            reference_seconds: reference.seconds,
        });
    }
    Ok(rows)
}

fn run_reference(b: &SimulateBench, scan: &str, object_size_px: usize, dose_photons: f64) -> Result<ReferenceOut> {
    let script = benches_dir().join("reference_simulate.py");
    let out = Command::new(&b.python)
        .arg(&script)
        .args(["--scan", scan])
        .args(["--n-images", &b.n_images.to_string()])
        .args(["--size", &b.size_px.to_string()])
        .args(["--object-size", &object_size_px.to_string()])
        .args(["--spacing", "4"])
        .args(["--dose", &dose_photons.to_string()])
        .args(["--repeats", &b.repeats.to_string()])
        .env("OMP_NUM_THREADS", b.threads.to_string())
        .output()
        .map_err(|e| Error::External {
            program: b.python.display().to_string(),
            reason: format!("cannot run the numpy reference ({e}); run scripts/setup.sh or set PTYCHO_PYTHON"),
        })?;
    if !out.status.success() {
        return Err(Error::External {
            program: script.display().to_string(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| Error::External {
        program: script.display().to_string(),
        reason: format!("unreadable output: {e}"),
    })
}

/// A plain-text table of benchmark rows.
pub fn format_table(rows: &[BenchRow]) -> String {
    let mut s = format!(
        "{:<44} {:>12} {:>12} {:>7} {:>8} {:>9} {:>9}\n",
        "benchmark", "ours", "reference", "ratio", "threads", "ours MB", "ref MB"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<44} {:>12.1} {:>12.1} {:>6.2}x {:>8} {:>9.0} {:>9.0}\n",
            r.name, r.ours, r.reference, r.ratio, r.ours_threads, r.ours_peak_rss_mb, r.reference_peak_rss_mb
        ));
    }
    if let Some(r) = rows.first() {
        s.push_str(&format!(
            "unit: {}; reference: {}; medians of {} runs\n",
            r.unit,
            r.reference_name,
            r.ours_seconds.len()
        ));
    }
    s
}
