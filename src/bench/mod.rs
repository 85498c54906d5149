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

/// Runs `benches/<script>` with `python` and `args` (and `env`), parsing
/// its stdout as JSON.
fn run_script<T: serde::de::DeserializeOwned>(
    python: &Path,
    script: &str,
    args: &[String],
    env: &[(&str, String)],
) -> Result<T> {
    let path = benches_dir().join(script);
    let out = Command::new(python)
        .arg(&path)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .map_err(|e| Error::External {
            program: python.display().to_string(),
            reason: format!("cannot run the reference ({e}); run scripts/setup.sh or set PTYCHO_PYTHON"),
        })?;
    if !out.status.success() {
        return Err(Error::External {
            program: path.display().to_string(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| Error::External {
        program: path.display().to_string(),
        reason: format!("unreadable output: {e}"),
    })
}

fn run_reference(b: &SimulateBench, scan: &str, object_size_px: usize, dose_photons: f64) -> Result<ReferenceOut> {
    let args = [
        "--scan",
        scan,
        "--n-images",
        &b.n_images.to_string(),
        "--size",
        &b.size_px.to_string(),
        "--object-size",
        &object_size_px.to_string(),
        "--spacing",
        "4",
        "--dose",
        &dose_photons.to_string(),
        "--repeats",
        &b.repeats.to_string(),
    ]
    .map(String::from);
    run_script(
        &b.python,
        "reference_simulate.py",
        &args,
        &[("OMP_NUM_THREADS", b.threads.to_string())],
    )
}

/// Four significant digits, without an exponent for everyday magnitudes.
fn significant(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return format!("{v}");
    }
    let decimals = (3 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

/// A plain-text table of benchmark rows.
pub fn format_table(rows: &[BenchRow]) -> String {
    let mut s = format!(
        "{:<44} {:>12} {:>12} {:>7} {:>8} {:>9} {:>9}\n",
        "benchmark", "ours", "reference", "ratio", "threads", "ours MB", "ref MB"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<44} {:>12} {:>12} {:>6.2}x {:>8} {:>9.0} {:>9.0}\n",
            r.name,
            significant(r.ours),
            significant(r.reference),
            r.ratio,
            r.ours_threads,
            r.ours_peak_rss_mb,
            r.reference_peak_rss_mb
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

/// Settings of `ptycho bench train`.
#[derive(Debug, Clone)]
pub struct TrainBench {
    pub n: usize,
    pub batch_size: usize,
    pub steps: usize,
    pub warmup: usize,
    pub threads: usize,
    pub python: PathBuf,
}

impl Default for TrainBench {
    fn default() -> Self {
        TrainBench {
            n: 64,
            batch_size: 16,
            steps: 10,
            warmup: 2,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            python: default_python(),
        }
    }
}

#[derive(Deserialize)]
struct TrainReferenceOut {
    step_seconds: Vec<f64>,
    peak_rss_mb: f64,
}

/// Runs `benches/reference_pinn.py` in `mode` (`train` or `infer`) with the
/// same sizes and threads as our side.
#[allow(clippy::too_many_arguments)]
fn run_pinn_reference(
    python: &Path,
    mode: &str,
    gridsize: usize,
    n: usize,
    batch: usize,
    steps: usize,
    warmup: usize,
    threads: usize,
) -> Result<TrainReferenceOut> {
    let args = [
        ("--mode", mode.to_string()),
        ("--gridsize", gridsize.to_string()),
        ("--n", n.to_string()),
        ("--batch", batch.to_string()),
        ("--steps", steps.to_string()),
        ("--warmup", warmup.to_string()),
        ("--threads", threads.to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect::<Vec<_>>();
    run_script(python, "reference_pinn.py", &args, &[])
}

/// Training steps per second of the PINN (gridsize 1 and 2, the default
/// network at N = 64, batch 16, CPU) against the same network in plain
/// PyTorch (`benches/reference_pinn.py`), same threads, random inputs.
pub fn train_bench(b: &TrainBench) -> Result<Vec<BenchRow>> {
    use crate::model::loss::poisson_nll;
    use crate::model::{ModelConfig, Pinn};
    use crate::train::adam::Adam;
    use tch::{Device, Kind, Tensor};

    tch::set_num_threads(b.threads as i32);
    let mut rows = Vec::new();
    for gridsize in [1usize, 2] {
        let cfg = ModelConfig {
            n: b.n,
            gridsize,
            ..ModelConfig::default()
        };
        let n = b.n as i64;
        let c = cfg.channels() as i64;
        let probe = crate::physics::disk_probe(n, n as f64 / 4.0, 0.0, Device::Cpu)?;
        let model = Pinn::new(&cfg, &probe, 30.0, 0, Device::Cpu)?;
        let mut adam = Adam::for_var_store(model.var_store(), 1e-3);
        let bs = b.batch_size as i64;
        let x = Tensor::rand([bs, c, n, n], (Kind::Float, Device::Cpu)) * 4.0;
        let offsets = (Tensor::rand([bs, c, 2], (Kind::Float, Device::Cpu)) - 0.5) * 8.0;
        let counts = (Tensor::rand([bs, c, n, n], (Kind::Float, Device::Cpu)) * 50.0).round();
        let mut ours = Vec::with_capacity(b.steps);
        for i in 0..b.warmup + b.steps {
            let t = Instant::now();
            adam.zero_grad();
            let out = model.autoencoder(&x, &offsets)?;
            let loss = poisson_nll(&out.counts(), &counts);
            loss.backward();
            adam.step();
            let _ = loss.double_value(&[]);
            if i >= b.warmup {
                ours.push(t.elapsed().as_secs_f64());
            }
        }
        let ours_rss = peak_rss_mb();
        let reference = run_pinn_reference(
            &b.python,
            "train",
            gridsize,
            b.n,
            b.batch_size,
            b.steps,
            b.warmup,
            b.threads,
        )?;
        let rate = |s: &[f64]| 1.0 / median(s);
        rows.push(BenchRow {
            name: format!("train pinn gs{gridsize} N={} batch={}", b.n, b.batch_size),
            unit: "steps/s".into(),
            ours: rate(&ours),
            reference: rate(&reference.step_seconds),
            reference_name: "PyTorch eager (benches/reference_pinn.py)".into(),
            ratio: rate(&ours) / rate(&reference.step_seconds),
            ours_threads: b.threads,
            ours_peak_rss_mb: ours_rss,
            reference_peak_rss_mb: reference.peak_rss_mb,
            ours_seconds: ours,
            reference_seconds: reference.step_seconds,
        });
    }
    Ok(rows)
}

#[derive(Deserialize)]
struct SecondsOut {
    seconds: Vec<f64>,
}

/// Grouping throughput: `n` uniform random positions into gridsize-2 groups
/// (K = 6), one group per position, against scipy's cKDTree
/// (`benches/reference_group.py`).
pub fn group_bench(n: usize, repeats: usize, python: &Path) -> Result<Vec<BenchRow>> {
    use crate::grouping::{GroupingConfig, group};
    use rand::{Rng, SeedableRng};

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let positions = ndarray::Array2::from_shape_fn((n, 2), |_| rng.random_range(0.0..5000.0));
    let cfg = GroupingConfig {
        gridsize: 2,
        k_neighbours: 6,
        ..GroupingConfig::default()
    };
    let mut ours = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        let g = group(&positions, &cfg)?;
        ours.push(t.elapsed().as_secs_f64());
        assert_eq!(g.n_groups(), n);
    }
    let args = ["--n", &n.to_string(), "--k", "6", "--repeats", &repeats.to_string()].map(String::from);
    let reference: SecondsOut = run_script(python, "reference_group.py", &args, &[])?;
    let rate = |s: &[f64]| n as f64 / median(s);
    Ok(vec![BenchRow {
        name: format!("group gs2 K=6 n={n}"),
        unit: "positions/s".into(),
        ours: rate(&ours),
        reference: rate(&reference.seconds),
        reference_name: "scipy cKDTree (benches/reference_group.py)".into(),
        ratio: rate(&ours) / rate(&reference.seconds),
        ours_threads: 1,
        ours_peak_rss_mb: peak_rss_mb(),
        reference_peak_rss_mb: f64::NAN,
        ours_seconds: ours,
        reference_seconds: reference.seconds,
    }])
}

/// Settings of `ptycho bench infer`.
#[derive(Debug, Clone)]
pub struct InferBench {
    pub n: usize,
    /// Groups per forward pass (one group per scan position).
    pub batch_size: usize,
    pub batches: usize,
    pub warmup: usize,
    pub threads: usize,
    pub python: PathBuf,
}

impl Default for InferBench {
    fn default() -> Self {
        InferBench {
            n: 64,
            batch_size: 64,
            batches: 5,
            warmup: 1,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            python: default_python(),
        }
    }
}

/// Inference throughput of `diffraction_to_obj` (gridsize 1 and 2, the
/// default network, no gradients) in scan positions per second (one group
/// per position), against the same network in plain PyTorch
/// (`benches/reference_pinn.py --mode infer`), same threads and batch.
pub fn infer_bench(b: &InferBench) -> Result<Vec<BenchRow>> {
    use crate::model::{ModelConfig, Pinn};
    use tch::{Device, Kind, Tensor};

    tch::set_num_threads(b.threads as i32);
    let _guard = tch::no_grad_guard();
    let mut rows = Vec::new();
    for gridsize in [1usize, 2] {
        let cfg = ModelConfig {
            n: b.n,
            gridsize,
            ..ModelConfig::default()
        };
        let (n, c, bs) = (b.n as i64, cfg.channels() as i64, b.batch_size as i64);
        let probe = crate::physics::disk_probe(n, n as f64 / 4.0, 0.0, Device::Cpu)?;
        let model = Pinn::new(&cfg, &probe, 30.0, 0, Device::Cpu)?;
        let x = Tensor::rand([bs, c, n, n], (Kind::Float, Device::Cpu)) * 4.0;
        let offsets = (Tensor::rand([bs, c, 2], (Kind::Float, Device::Cpu)) - 0.5) * 8.0;
        let mut ours = Vec::with_capacity(b.batches);
        for i in 0..b.warmup + b.batches {
            let t = Instant::now();
            let y = model.diffraction_to_obj(&x, &offsets)?;
            let _ = y.abs().sum(Kind::Float).double_value(&[]);
            if i >= b.warmup {
                ours.push(t.elapsed().as_secs_f64());
            }
        }
        let ours_rss = peak_rss_mb();
        let reference = run_pinn_reference(
            &b.python,
            "infer",
            gridsize,
            b.n,
            b.batch_size,
            b.batches,
            b.warmup,
            b.threads,
        )?;
        let rate = |s: &[f64]| b.batch_size as f64 / median(s);
        rows.push(BenchRow {
            name: format!("infer pinn gs{gridsize} N={} batch={}", b.n, b.batch_size),
            unit: "positions/s".into(),
            ours: rate(&ours),
            reference: rate(&reference.step_seconds),
            reference_name: "PyTorch eager (benches/reference_pinn.py --mode infer)".into(),
            ratio: rate(&ours) / rate(&reference.step_seconds),
            ours_threads: b.threads,
            ours_peak_rss_mb: ours_rss,
            reference_peak_rss_mb: reference.peak_rss_mb,
            ours_seconds: ours,
            reference_seconds: reference.step_seconds,
        });
    }
    Ok(rows)
}

/// Stitching throughput: the central 20×20 crops of `patches` random
/// complex 64×64 patches at fractional positions onto a 512×512 canvas
/// (bilinear, with coverage and the final division), against numpy
/// (`benches/reference_stitch.py`).
pub fn stitch_bench(patches: usize, repeats: usize, threads: usize, python: &Path) -> Result<Vec<BenchRow>> {
    use crate::recon::stitch::accumulate;
    use rand::{Rng, SeedableRng};
    use tch::{Device, Kind, Tensor};

    tch::set_num_threads(threads as i32);
    let (n, crop, side) = (64i64, 20i64, 512i64);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let pos: Vec<f64> = (0..2 * patches)
        .map(|_| rng.random_range(n as f64 / 2.0..(side - n / 2) as f64))
        .collect();
    let positions = Tensor::from_slice(&pos).view([patches as i64, 2]);
    let data = Tensor::randn([patches as i64, n, n], (Kind::ComplexFloat, Device::Cpu));
    let mut ours = Vec::with_capacity(repeats);
    for _ in 0..repeats + 1 {
        let t = Instant::now();
        let (sum, cover) = accumulate(&data, &positions, crop, side, side)?;
        let object = sum / cover.clamp_min(1e-6) * cover.gt(1e-6).to_kind(Kind::Float);
        let _ = object.abs().sum(Kind::Float).double_value(&[]);
        ours.push(t.elapsed().as_secs_f64());
    }
    ours.remove(0);
    let args = [
        "--patches",
        &patches.to_string(),
        "--n",
        &n.to_string(),
        "--crop",
        &crop.to_string(),
        "--side",
        &side.to_string(),
        "--repeats",
        &repeats.to_string(),
    ]
    .map(String::from);
    let reference: SecondsOut = run_script(python, "reference_stitch.py", &args, &[])?;
    let rate = |s: &[f64]| patches as f64 / median(s);
    Ok(vec![BenchRow {
        name: format!("stitch {patches} crops {crop}² of N={n} on {side}²"),
        unit: "patches/s".into(),
        ours: rate(&ours),
        reference: rate(&reference.seconds),
        reference_name: "numpy (benches/reference_stitch.py)".into(),
        ratio: rate(&ours) / rate(&reference.seconds),
        ours_threads: threads,
        ours_peak_rss_mb: peak_rss_mb(),
        reference_peak_rss_mb: f64::NAN,
        ours_seconds: ours,
        reference_seconds: reference.seconds,
    }])
}
