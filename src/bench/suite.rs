//! `ptycho bench all`: every benchmark in one table, the device's peak
//! FLOP/s measured in the same run, and the results kept as JSON (with a
//! description of the machine) so progress can be compared over time.
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::{
    BenchRow, InferBench, Precision, SimulateBench, TrainBench, default_python, default_threads, group_bench,
    infer_bench, iterative_bench, median, metrics_bench, simulate_bench, stitch_bench, train_bench,
};
use crate::data::atomic::write_bytes_atomic;
use crate::error::{Error, Result};

/// What `bench all` runs.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    pub device: Device,
    pub threads: usize,
    pub python: PathBuf,
    /// Fewer repeats and smaller sizes (a smoke run of every benchmark).
    pub quick: bool,
    /// Batch sizes of the training rows (the GPU sweep is 16, 64, 256).
    pub train_batches: Vec<usize>,
    pub precision: Precision,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        SuiteConfig {
            device: Device::Cpu,
            threads: default_threads(),
            python: default_python(),
            quick: false,
            train_batches: vec![16],
            precision: Precision::Fp32,
        }
    }
}

/// The machine a suite ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cpu_cores: usize,
    pub memory_gib: f64,
    pub os: String,
    /// `nvidia-smi`'s name of GPU 0, when there is one.
    pub gpu: Option<String>,
    pub cuda_devices: i64,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown".to_string(), |s| s.trim().to_string());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .map_or(f64::NAN, |kb| kb / 1024.0 / 1024.0);
        let gpu = std::process::Command::new("nvidia-smi")
            .args(["--query-gpu=name", "--format=csv,noheader"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
            .filter(|s| !s.is_empty());
        Machine {
            cpu_model,
            cpu_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            gpu,
            cuda_devices: tch::Cuda::device_count(),
        }
    }
}

/// One suite run: rows, failures and the yardstick.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteReport {
    pub machine: Machine,
    pub device: String,
    pub threads: usize,
    pub precision: Precision,
    /// float32 matrix-product FLOP/s measured on `device` in this run.
    pub peak_flops: f64,
    pub rows: Vec<BenchRow>,
    /// Benchmarks that could not run: (name, error).
    pub failures: Vec<(String, String)>,
    pub unix_time: u64,
    pub seconds: f64,
}

/// Peak float32 FLOP/s of `device`: the median of 5 products of two random
/// `side × side` matrices (2048 on the CPU, 8192 on CUDA) after 2 warm-ups,
/// at `2·side³` FLOPs each.
pub fn measure_peak_flops(device: Device) -> f64 {
    let _guard = tch::no_grad_guard();
    let side: i64 = if device == Device::Cpu { 2048 } else { 8192 };
    let a = Tensor::randn([side, side], (Kind::Float, device));
    let b = Tensor::randn([side, side], (Kind::Float, device));
    let mut times = Vec::new();
    for i in 0..7 {
        let t = Instant::now();
        let c = a.matmul(&b);
        let _ = c.get(0).get(0).double_value(&[]);
        if i >= 2 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    2.0 * (side as f64).powi(3) / median(&times)
}

/// Runs every benchmark, calling `on_rows` as each finishes (for progress);
/// a benchmark that fails is recorded and the others go on.
pub fn run_suite(cfg: &SuiteConfig, on_rows: &mut dyn FnMut(&[BenchRow])) -> SuiteReport {
    let started = Instant::now();
    tch::set_num_threads(cfg.threads as i32);
    let peak_flops = measure_peak_flops(cfg.device);
    let (repeats, scale) = if cfg.quick { (2, 4) } else { (5, 1) };
    let rounds = if cfg.quick { 1 } else { 3 };
    let device = cfg.device;
    let python = cfg.python.as_path();
    type Job<'a> = (String, Box<dyn Fn() -> Result<Vec<BenchRow>> + 'a>);
    let mut jobs: Vec<Job<'_>> = Vec::new();
    if device == Device::Cpu {
        // the simulator's reference is numpy; on a GPU run it is skipped
        jobs.push((
            "simulate".into(),
            Box::new(move || {
                simulate_bench(&SimulateBench {
                    n_images: 4096 / scale,
                    repeats,
                    rounds,
                    threads: cfg.threads,
                    doses_photons: vec![1e4],
                    python: python.to_path_buf(),
                    ..SimulateBench::default()
                })
            }),
        ));
        jobs.push((
            "group".into(),
            Box::new(move || group_bench(100_000 / scale, repeats, rounds, python)),
        ));
    }
    for &batch in &cfg.train_batches {
        jobs.push((
            format!("train batch {batch}"),
            Box::new(move || {
                train_bench(&TrainBench {
                    batch_size: batch,
                    steps: if cfg.quick { 3 } else { 10 },
                    rounds,
                    threads: cfg.threads,
                    python: python.to_path_buf(),
                    device,
                    precision: cfg.precision,
                    ..TrainBench::default()
                })
            }),
        ));
    }
    jobs.push((
        "infer".into(),
        Box::new(move || {
            infer_bench(&InferBench {
                batch_size: if device == Device::Cpu { 64 } else { 1024 },
                batches: repeats,
                rounds,
                threads: cfg.threads,
                python: python.to_path_buf(),
                device,
                precision: cfg.precision,
                ..InferBench::default()
            })
        }),
    ));
    jobs.push((
        "stitch".into(),
        Box::new(move || stitch_bench(4096 / scale, repeats, rounds, cfg.threads, device, python)),
    ));
    jobs.push((
        "iterative".into(),
        Box::new(move || {
            iterative_bench(
                if cfg.quick { 3 } else { 10 },
                repeats.min(3),
                rounds,
                cfg.threads,
                device,
                python,
            )
        }),
    ));
    jobs.push((
        "metrics".into(),
        Box::new(move || metrics_bench(512, repeats, rounds, cfg.threads, python)),
    ));
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (name, job) in jobs {
        match job() {
            Ok(mut r) => {
                for row in &mut r {
                    row.peak_fraction = row.achieved_flops().map(|f| f / peak_flops);
                }
                on_rows(&r);
                rows.extend(r);
            }
            Err(e) => failures.push((name, e.to_string())),
        }
    }
    SuiteReport {
        machine: Machine::describe(),
        device: format!("{device:?}"),
        threads: cfg.threads,
        precision: cfg.precision,
        peak_flops,
        rows,
        failures,
        unix_time: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Writes `report` as `<dir>/<unix time>-<device>.json` (atomically) and
/// returns the path.
pub fn save_report(report: &SuiteReport, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let device = report.device.to_lowercase().replace(['(', ')'], "");
    let path = dir.join(format!("{}-{device}.json", report.unix_time));
    let json = serde_json::to_vec_pretty(report).map_err(|e| Error::value("bench report", e.to_string()))?;
    write_bytes_atomic(&path, &json)?;
    Ok(path)
}

/// The suite's table: every row, then the peak and any failures.
pub fn format_report(report: &SuiteReport) -> String {
    let mut s = super::format_table(&report.rows);
    s.push_str(&format!(
        "device {} ({} threads, {}): measured peak {:.1} GFLOP/s (float32 matmul); {:.0} s in all\n",
        report.device,
        report.threads,
        report.machine.gpu.as_deref().unwrap_or(&report.machine.cpu_model),
        report.peak_flops / 1e9,
        report.seconds
    ));
    for (name, error) in &report.failures {
        s.push_str(&format!("FAILED {name}: {error}\n"));
    }
    s
}
