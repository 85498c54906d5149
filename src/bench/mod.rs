//! Benchmarks that compare against a reference measured in the same run
//! (numpy scripts under `benches/`). Figures are medians of repeated runs;
//! no benchmark is a test.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

mod measured;
mod same_seed;
mod suite;

use crate::error::{Error, Result};
use crate::simulate::{ObjectKind, ScanKind, SimConfig, simulate_on};
pub use measured::{MeasuredBench, default_peer_python, measured_bench, summarise_frc};
pub use same_seed::{SameSeed, SameSeedRun, same_seed_losses};
pub use suite::{Machine, SuiteConfig, SuiteReport, format_report, measure_peak_flops, run_suite, save_report};

pub use crate::train::Precision;

/// One row of a benchmark table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    /// Where ours ran (`Cpu`, `Cuda(0)`).
    #[serde(default)]
    pub device: String,
    /// Floating-point operations per `unit` item (e.g. per position), where
    /// the work is countable (convolutions and matrix products, as counted
    /// by PyTorch's FlopCounterMode on the reference network).
    #[serde(default)]
    pub flops_per_unit: Option<f64>,
    /// `ours · flops_per_unit` as a fraction of the device's peak measured
    /// in the same run (`bench all`).
    #[serde(default)]
    pub peak_fraction: Option<f64>,
}

impl BenchRow {
    /// Our achieved FLOP/s, where countable.
    pub fn achieved_flops(&self) -> Option<f64> {
        self.flops_per_unit.map(|f| f * self.ours)
    }
}

/// Settings of `ptycho bench simulate`.
#[derive(Debug, Clone)]
pub struct SimulateBench {
    pub n_images: usize,
    pub size_px: usize,
    /// Timed runs per round, on each side.
    pub repeats: usize,
    /// Rounds of (our runs, the reference's); the ratio is their median.
    pub rounds: usize,
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
            rounds: 3,
            threads: default_threads(),
            // the middle of the dose study's range, and a high dose where
            // most pixels need the large-rate Poisson sampler
            doses_photons: vec![1e4, 1e6],
            python: default_python(),
        }
    }
}

/// Threads the benchmarks use unless told otherwise: every core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The project's Python (`.venv/bin/python`), or `PTYCHO_PYTHON`.
pub fn default_python() -> PathBuf {
    std::env::var_os("PTYCHO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
}

/// The reference scripts: `PTYCHO_BENCHES`, else `benches/` of the source
/// tree the binary was built from (a binary sent to another machine is told
/// where its checkout's `benches/` is).
fn benches_dir() -> PathBuf {
    std::env::var_os("PTYCHO_BENCHES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("benches"))
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
        let our_round = || -> Result<Vec<f64>> {
            let mut ours = Vec::with_capacity(b.repeats);
            for _ in 0..b.repeats {
                let t = Instant::now();
                let ds = pool.install(|| simulate_on(&cfg, tch::Device::Cpu))?;
                ours.push(t.elapsed().as_secs_f64());
                assert_eq!(ds.n_images(), b.n_images);
            }
            Ok(ours)
        };
        let (row, reference) = alternate(b.rounds, our_round, || run_reference(b, name, cfg.object_size_px, dose))?
            .into_row(
                format!("simulate {name} N={} n={} dose={dose:.0e}", b.size_px, b.n_images),
                "patterns/s",
                b.n_images as f64,
                "numpy (benches/reference_simulate.py)",
                b.threads,
            );
        rows.push(BenchRow {
            reference_peak_rss_mb: reference.peak_rss_mb,
            ..row
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
    let mut command = Command::new(python);
    command.arg(&path).args(args);
    // the reference runs under the same allocator settings as we do
    if crate::runtime::freed_memory_kept() && std::env::var_os(crate::runtime::GLIBC_TUNABLES.0).is_none() {
        command.env(crate::runtime::GLIBC_TUNABLES.0, crate::runtime::GLIBC_TUNABLES.1);
    }
    let out = command
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

/// A plain-text table of benchmark rows: rates, ratio, threads, peak
/// memory, and achieved GFLOP/s (with the fraction of the measured peak)
/// where the work is countable.
pub fn format_table(rows: &[BenchRow]) -> String {
    let mut s = format!(
        "{:<52} {:>11} {:>11} {:<12} {:>7} {:>7} {:>8} {:>8} {:>9}\n",
        "benchmark", "ours", "reference", "unit", "ratio", "threads", "ours MB", "ref MB", "GFLOP/s"
    );
    for r in rows {
        let flops = match (r.achieved_flops(), r.peak_fraction) {
            (Some(f), Some(p)) => format!("{:.1} ({:.0}%)", f / 1e9, 100.0 * p),
            (Some(f), None) => format!("{:.1}", f / 1e9),
            _ => "-".into(),
        };
        s.push_str(&format!(
            "{:<52} {:>11} {:>11} {:<12} {:>6.2}x {:>7} {:>8.0} {:>8.0} {:>9}\n",
            r.name,
            significant(r.ours),
            significant(r.reference),
            r.unit,
            r.ratio,
            r.ours_threads,
            r.ours_peak_rss_mb,
            r.reference_peak_rss_mb,
            flops
        ));
    }
    let mut references: Vec<&str> = rows.iter().map(|r| r.reference_name.as_str()).collect();
    references.dedup();
    if let Some(r) = rows.first() {
        s.push_str(&format!(
            "reference: {}; medians of {} runs\n",
            references.join(", "),
            r.ours_seconds.len()
        ));
    }
    s
}

/// Settings of `ptycho bench train`.
#[derive(Debug, Clone)]
pub struct TrainBench {
    /// The gridsizes timed, one row each (default 1 and 2).
    pub gridsizes: Vec<usize>,
    pub n: usize,
    pub batch_size: usize,
    /// Timed steps per round, on each side.
    pub steps: usize,
    pub warmup: usize,
    /// Rounds of (our steps, then the reference's); the ratio is the
    /// median of the rounds' ratios, so a machine that slows down for a
    /// while weighs on both sides.
    pub rounds: usize,
    pub threads: usize,
    pub python: PathBuf,
    pub device: tch::Device,
    pub precision: Precision,
}

/// `cpu`, `cuda:N` as PyTorch spells a device.
pub fn torch_device_name(device: tch::Device) -> String {
    match device {
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}

impl Default for TrainBench {
    fn default() -> Self {
        TrainBench {
            gridsizes: vec![1, 2],
            n: 64,
            batch_size: 16,
            steps: 10,
            warmup: 2,
            rounds: 3,
            threads: default_threads(),
            python: default_python(),
            device: tch::Device::Cpu,
            precision: Precision::Fp32,
        }
    }
}

#[derive(Deserialize)]
struct TrainReferenceOut {
    step_seconds: Vec<f64>,
    peak_rss_mb: f64,
    #[serde(default)]
    flops_per_sample: Option<f64>,
}

/// The network shape and run settings both sides of a PINN benchmark share.
struct PinnRun<'a> {
    python: &'a Path,
    mode: &'a str,
    gridsize: usize,
    n: usize,
    batch: usize,
    steps: usize,
    warmup: usize,
    threads: usize,
    device: tch::Device,
    precision: Precision,
    /// cuDNN's autotuner on the reference's side too (as on ours, see
    /// [`crate::runtime::tune_cudnn`]), so that both use the same algorithms.
    cudnn_benchmark: bool,
}

/// Runs `benches/reference_pinn.py` in `run.mode` (`train` or `infer`)
/// with the same sizes, threads, device and precision as our side.
fn run_pinn_reference(run: &PinnRun<'_>) -> Result<TrainReferenceOut> {
    let args = [
        ("--mode", run.mode.to_string()),
        ("--gridsize", run.gridsize.to_string()),
        ("--n", run.n.to_string()),
        ("--batch", run.batch.to_string()),
        ("--steps", run.steps.to_string()),
        ("--warmup", run.warmup.to_string()),
        ("--threads", run.threads.to_string()),
        ("--device", torch_device_name(run.device)),
        ("--precision", run.precision.name().to_string()),
        ("--cudnn-benchmark", u8::from(run.cudnn_benchmark).to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect::<Vec<_>>();
    run_script(run.python, "reference_pinn.py", &args, &[])
}

/// A reference script's output: its timed seconds.
trait ReferenceTimes {
    fn seconds(&self) -> &[f64];
}

impl ReferenceTimes for TrainReferenceOut {
    fn seconds(&self) -> &[f64] {
        &self.step_seconds
    }
}

impl ReferenceTimes for ReferenceOut {
    fn seconds(&self) -> &[f64] {
        &self.seconds
    }
}

impl ReferenceTimes for SecondsOut {
    fn seconds(&self) -> &[f64] {
        &self.seconds
    }
}

impl ReferenceTimes for EpieOut {
    fn seconds(&self) -> &[f64] {
        &self.seconds
    }
}

/// Times of both sides of a benchmark, measured in alternating rounds.
struct Alternated<R> {
    ours: Vec<f64>,
    reference: Vec<f64>,
    /// Median over the rounds of (reference median / our median).
    ratio: f64,
    /// Rounds run (at least one).
    rounds: usize,
    /// The last reference run (peak memory, FLOP count).
    last_reference: R,
}

impl<R> Alternated<R> {
    /// The row of a benchmark whose every timed run does `units_per_run`
    /// units of work: both sides' rates (units per median second), the
    /// ratio, the times, and `reference_name` with the rounds run. Also
    /// returns the last reference run, for its memory or FLOP count.
    fn into_row(
        self,
        name: String,
        unit: &str,
        units_per_run: f64,
        reference_name: &str,
        ours_threads: usize,
    ) -> (BenchRow, R) {
        let rate = |s: &[f64]| units_per_run / median(s);
        let row = BenchRow {
            name,
            unit: unit.into(),
            ours: rate(&self.ours),
            reference: rate(&self.reference),
            reference_name: format!("{reference_name}, {} rounds", self.rounds),
            ratio: self.ratio,
            ours_threads,
            ours_peak_rss_mb: peak_rss_mb(),
            reference_peak_rss_mb: f64::NAN,
            ours_seconds: self.ours,
            reference_seconds: self.reference,
            ..BenchRow::default()
        };
        (row, self.last_reference)
    }
}

/// Runs `rounds` rounds of `ours` then `reference`, each returning its
/// times, so that a machine that slows down for a while weighs on both
/// sides.
fn alternate<R: ReferenceTimes>(
    rounds: usize,
    mut ours: impl FnMut() -> Result<Vec<f64>>,
    mut reference: impl FnMut() -> Result<R>,
) -> Result<Alternated<R>> {
    let (mut all_ours, mut all_reference, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    let rounds = rounds.max(1);
    for _ in 0..rounds {
        let o = ours()?;
        let r = reference()?;
        ratios.push(median(r.seconds()) / median(&o));
        all_ours.extend(o);
        all_reference.extend(r.seconds().iter().copied());
        last = Some(r);
    }
    Ok(Alternated {
        ours: all_ours,
        reference: all_reference,
        ratio: median(&ratios),
        rounds,
        last_reference: last.expect("at least one round"),
    })
}

/// Training steps per second of the PINN (gridsize 1 and 2, the default
/// network at N = 64, batch 16 by default) against the same network in plain
/// PyTorch (`benches/reference_pinn.py`), same threads, device, precision and
/// random inputs. Everything stays on the device; the loss is read once per
/// step (which also waits for the device).
pub fn train_bench(b: &TrainBench) -> Result<Vec<BenchRow>> {
    use crate::model::loss::poisson_nll;
    use crate::model::{ModelConfig, Pinn};
    use crate::train::adam::Adam;
    use tch::{Kind, Tensor};

    b.precision.check(b.device)?;
    b.precision.apply(b.device)?;
    tch::set_num_threads(b.threads as i32);
    let cudnn_benchmark = crate::runtime::tune_cudnn(b.device);
    let device = b.device;
    let mut rows = Vec::new();
    for &gridsize in &b.gridsizes {
        let cfg = ModelConfig {
            n: b.n,
            gridsize,
            ..ModelConfig::default()
        };
        let n = b.n as i64;
        let c = cfg.channels() as i64;
        let probe = crate::physics::disk_probe(n, n as f64 / 4.0, 0.0, device)?;
        let model = Pinn::new(&cfg, &probe, 30.0, 0, device)?;
        let mut adam = Adam::for_var_store(model.var_store(), 1e-3);
        let bs = b.batch_size as i64;
        let x = Tensor::rand([bs, c, n, n], (Kind::Float, device)) * 4.0;
        let offsets = (Tensor::rand([bs, c, 2], (Kind::Float, device)) - 0.5) * 8.0;
        let counts = (Tensor::rand([bs, c, n, n], (Kind::Float, device)) * 50.0).round();
        let mut our_round = || -> Result<Vec<f64>> {
            let mut ours = Vec::with_capacity(b.steps);
            for i in 0..b.warmup + b.steps {
                let t = Instant::now();
                let predicted = b
                    .precision
                    .run(device, || model.autoencoder(&x, &offsets).map(|o| o.counts()))??;
                let loss = poisson_nll(&predicted.to_kind(Kind::Float), &counts);
                adam.backward(&loss)?;
                adam.step();
                let _ = loss.double_value(&[]);
                if i >= b.warmup {
                    ours.push(t.elapsed().as_secs_f64());
                }
            }
            Ok(ours)
        };
        let run = PinnRun {
            python: &b.python,
            mode: "train",
            gridsize,
            n: b.n,
            batch: b.batch_size,
            steps: b.steps,
            warmup: b.warmup,
            threads: b.threads,
            device,
            precision: b.precision,
            cudnn_benchmark,
        };
        let (row, reference) = alternate(b.rounds, &mut our_round, || run_pinn_reference(&run))?.into_row(
            format!(
                "train pinn gs{gridsize} N={} batch={} {}",
                b.n,
                b.batch_size,
                b.precision.name()
            ),
            "steps/s",
            1.0,
            "PyTorch eager (benches/reference_pinn.py)",
            b.threads,
        );
        rows.push(BenchRow {
            reference_peak_rss_mb: reference.peak_rss_mb,
            device: format!("{device:?}"),
            // per step: the reference counts FLOPs per sample
            flops_per_unit: reference.flops_per_sample.map(|f| f * b.batch_size as f64),
            ..row
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
/// (`benches/reference_group.py`), in `rounds` alternated rounds.
pub fn group_bench(n: usize, repeats: usize, rounds: usize, python: &Path) -> Result<Vec<BenchRow>> {
    use crate::grouping::{GroupingConfig, group};
    use rand::{Rng, SeedableRng};

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let positions = ndarray::Array2::from_shape_fn((n, 2), |_| rng.random_range(0.0..5000.0));
    let cfg = GroupingConfig {
        gridsize: 2,
        k_neighbours: 6,
        ..GroupingConfig::default()
    };
    let our_round = || -> Result<Vec<f64>> {
        let mut ours = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let t = Instant::now();
            let g = group(&positions, &cfg)?;
            ours.push(t.elapsed().as_secs_f64());
            assert_eq!(g.n_groups(), n);
        }
        Ok(ours)
    };
    let args = ["--n", &n.to_string(), "--k", "6", "--repeats", &repeats.to_string()].map(String::from);
    let (row, _) = alternate(rounds, our_round, || {
        run_script::<SecondsOut>(python, "reference_group.py", &args, &[])
    })?
    .into_row(
        format!("group gs2 K=6 n={n}"),
        "positions/s",
        n as f64,
        "scipy cKDTree (benches/reference_group.py)",
        1,
    );
    Ok(vec![row])
}

/// Settings of `ptycho bench infer`.
#[derive(Debug, Clone)]
pub struct InferBench {
    /// The gridsizes timed, one row each (default 1 and 2).
    pub gridsizes: Vec<usize>,
    pub n: usize,
    /// Groups per forward pass (one group per scan position).
    pub batch_size: usize,
    /// Timed batches per round, on each side.
    pub batches: usize,
    pub warmup: usize,
    /// Rounds of (our batches, then the reference's), as in [`TrainBench`].
    pub rounds: usize,
    pub threads: usize,
    pub python: PathBuf,
    pub device: tch::Device,
    pub precision: Precision,
}

impl Default for InferBench {
    fn default() -> Self {
        InferBench {
            gridsizes: vec![1, 2],
            n: 64,
            batch_size: 64,
            batches: 5,
            warmup: 1,
            rounds: 3,
            threads: default_threads(),
            python: default_python(),
            device: tch::Device::Cpu,
            precision: Precision::Fp32,
        }
    }
}

/// Inference throughput of `diffraction_to_obj` (gridsize 1 and 2, the
/// default network, no gradients) in scan positions per second (one group
/// per position), against the same network in plain PyTorch
/// (`benches/reference_pinn.py --mode infer`), same threads, batch, device
/// and precision.
pub fn infer_bench(b: &InferBench) -> Result<Vec<BenchRow>> {
    use crate::model::{ModelConfig, Pinn};
    use tch::{Kind, Tensor};

    b.precision.check(b.device)?;
    b.precision.apply(b.device)?;
    tch::set_num_threads(b.threads as i32);
    let cudnn_benchmark = crate::runtime::tune_cudnn(b.device);
    let _guard = tch::no_grad_guard();
    let device = b.device;
    let mut rows = Vec::new();
    for &gridsize in &b.gridsizes {
        let cfg = ModelConfig {
            n: b.n,
            gridsize,
            ..ModelConfig::default()
        };
        let (n, c, bs) = (b.n as i64, cfg.channels() as i64, b.batch_size as i64);
        let probe = crate::physics::disk_probe(n, n as f64 / 4.0, 0.0, device)?;
        let model = Pinn::new(&cfg, &probe, 30.0, 0, device)?;
        let x = Tensor::rand([bs, c, n, n], (Kind::Float, device)) * 4.0;
        let offsets = (Tensor::rand([bs, c, 2], (Kind::Float, device)) - 0.5) * 8.0;
        let our_round = || -> Result<Vec<f64>> {
            let mut ours = Vec::with_capacity(b.batches);
            for i in 0..b.warmup + b.batches {
                let t = Instant::now();
                let y = b.precision.run(device, || model.diffraction_to_obj(&x, &offsets))??;
                let _ = y.abs().sum(Kind::Float).double_value(&[]);
                if i >= b.warmup {
                    ours.push(t.elapsed().as_secs_f64());
                }
            }
            Ok(ours)
        };
        let run = PinnRun {
            python: &b.python,
            mode: "infer",
            gridsize,
            n: b.n,
            batch: b.batch_size,
            steps: b.batches,
            warmup: b.warmup,
            threads: b.threads,
            device,
            precision: b.precision,
            cudnn_benchmark,
        };
        let (row, reference) = alternate(b.rounds, our_round, || run_pinn_reference(&run))?.into_row(
            format!(
                "infer pinn gs{gridsize} N={} batch={} {}",
                b.n,
                b.batch_size,
                b.precision.name()
            ),
            "positions/s",
            b.batch_size as f64,
            "PyTorch eager (benches/reference_pinn.py --mode infer)",
            b.threads,
        );
        rows.push(BenchRow {
            reference_peak_rss_mb: reference.peak_rss_mb,
            device: format!("{device:?}"),
            flops_per_unit: reference.flops_per_sample,
            ..row
        });
    }
    Ok(rows)
}

/// Stitching throughput: the central 20×20 crops of `patches` random
/// complex 64×64 patches at fractional positions onto a 512×512 canvas
/// (bilinear, with coverage and the final division), against numpy
/// (`benches/reference_stitch.py`).
pub fn stitch_bench(
    patches: usize,
    repeats: usize,
    rounds: usize,
    threads: usize,
    device: tch::Device,
    python: &Path,
) -> Result<Vec<BenchRow>> {
    use crate::recon::stitch::{accumulate, average};
    use rand::{Rng, SeedableRng};
    use tch::{Kind, Tensor};

    tch::set_num_threads(threads as i32);
    let (n, crop, side) = (64i64, 20i64, 512i64);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let pos: Vec<f64> = (0..2 * patches)
        .map(|_| rng.random_range(n as f64 / 2.0..(side - n / 2) as f64))
        .collect();
    let positions = Tensor::from_slice(&pos).view([patches as i64, 2]).to_device(device);
    let data = Tensor::randn([patches as i64, n, n], (Kind::ComplexFloat, device));
    let stitch = || -> Result<f64> {
        let t = Instant::now();
        let (sum, cover) = accumulate(&data, &positions, crop, side, side)?;
        let object = average(&sum, &cover)?;
        let _ = object.abs().sum(Kind::Float).double_value(&[]);
        Ok(t.elapsed().as_secs_f64())
    };
    stitch()?; // warm-up, not timed
    let our_round = || (0..repeats).map(|_| stitch()).collect::<Result<Vec<f64>>>();
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
    let (row, _) = alternate(rounds, our_round, || {
        run_script::<SecondsOut>(python, "reference_stitch.py", &args, &[])
    })?
    .into_row(
        format!("stitch {patches} crops {crop}² of N={n} on {side}²"),
        "patches/s",
        patches as f64,
        "numpy (benches/reference_stitch.py)",
        threads,
    );
    Ok(vec![BenchRow {
        device: format!("{device:?}"),
        ..row
    }])
}

/// Output of `benches/reference_epie.py`.
#[derive(Deserialize)]
struct EpieOut {
    seconds: Vec<f64>,
    data_error: f64,
}

/// Iterative solver throughput: `iterations` epochs of batched ePIE (batches
/// of 10, `max_weight` 0.01, fixed probe) on noise-free data (N = 64, a
/// 192×192 object, a 17×17 raster with 8 px spacing: 289 positions), against
/// the same algorithm in numpy (`benches/reference_epie.py`) on the same NPZ.
/// Rates are epochs per second; both sides' final data errors are printed in
/// the row name so a reader sees that they solve the same problem.
pub fn iterative_bench(
    iterations: usize,
    repeats: usize,
    rounds: usize,
    threads: usize,
    device: tch::Device,
    python: &Path,
) -> Result<Vec<BenchRow>> {
    use crate::array::tensor_to_f32;
    use crate::recon::iterative::{IterativeConfig, reconstruct_iterative};
    use crate::simulate::forward_amplitudes;
    use ndarray::{Array1, Array2, Ix3};
    use tch::Device;

    tch::set_num_threads(threads as i32);
    let cfg = SimConfig {
        seed: 3,
        size_px: 64,
        object_size_px: 192,
        dose_photons: None,
        ..SimConfig::default()
    };
    let mut ds = simulate_on(&cfg, Device::Cpu)?;
    let side = 17usize;
    let flat: Vec<f64> = (0..side * side)
        .flat_map(|i| [32.0 + 8.0 * (i % side) as f64, 32.0 + 8.0 * (i / side) as f64])
        .collect();
    ds.positions_px = Array2::from_shape_vec((side * side, 2), flat).expect("raster");
    ds.start_positions_px = ds.positions_px.clone();
    ds.scan_index = Array1::zeros(side * side);
    ds.diffraction = tensor_to_f32(&forward_amplitudes(&ds, Device::Cpu)?)?
        .into_dimensionality::<Ix3>()
        .map_err(|e| Error::value("diffraction", e.to_string()))?;
    ds.metadata.generator_config = None;
    let dir = tempfile::tempdir().map_err(|e| Error::io(Path::new("temporary folder"), e))?;
    let npz = dir.path().join("iterative_bench.npz");
    crate::data::write_npz(&ds, &npz)?;

    // the reference implements α = 1 with the given max_weight: the same settings here
    let mut solver = IterativeConfig {
        iterations: Some(iterations),
        max_weight: Some(0.01),
        tolerance: 0.0,
        device: torch_device_name(device),
        ..IterativeConfig::epie()
    };
    solver.epie.alpha = Some(1.0);
    let mut our_error = f64::NAN;
    let our_round = || -> Result<Vec<f64>> {
        let mut ours = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let t = Instant::now();
            let out = reconstruct_iterative(&ds, &solver, &mut |_| {})?;
            ours.push(t.elapsed().as_secs_f64());
            our_error = out.history.last().map_or(f64::NAN, |r| r.data_error);
        }
        Ok(ours)
    };
    let args = [
        "--data".to_string(),
        npz.display().to_string(),
        "--iterations".into(),
        iterations.to_string(),
        "--batch".into(),
        solver.batch_size.to_string(),
        "--max-weight".into(),
        solver.max_weight.unwrap_or(0.01).to_string(),
        "--repeats".into(),
        repeats.to_string(),
    ];
    let (row, reference) = alternate(rounds, our_round, || {
        run_script::<EpieOut>(
            python,
            "reference_epie.py",
            &args,
            &[("OMP_NUM_THREADS", threads.to_string())],
        )
    })?
    .into_row(
        String::new(),
        "epochs/s",
        iterations as f64,
        "numpy (benches/reference_epie.py)",
        threads,
    );
    Ok(vec![BenchRow {
        name: format!(
            "ePIE {} positions N=64, {iterations} epochs (data error {our_error:.2e} vs {:.2e})",
            side * side,
            reference.data_error
        ),
        device: format!("{device:?}"),
        ..row
    }])
}

/// Image-metric throughput: SSIM (Gaussian window) plus an FRC curve of two
/// `side × side` images, against scikit-image's `structural_similarity` and
/// a numpy FRC (`benches/reference_metrics.py`).
pub fn metrics_bench(
    side: usize,
    repeats: usize,
    rounds: usize,
    threads: usize,
    python: &Path,
) -> Result<Vec<BenchRow>> {
    use rand::{Rng, SeedableRng};

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let a = ndarray::Array2::from_shape_fn((side, side), |_| rng.random_range(0.0..1.0f64));
    let b = a.mapv(|v| (v + rng.random_range(-0.1..0.1f64)).clamp(0.0, 1.0));
    let our_round = || -> Result<Vec<f64>> {
        let mut ours = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let t = Instant::now();
            let s = crate::metrics::ssim(a.view(), b.view(), 1.0)?;
            let f = crate::metrics::frc(a.view(), b.view())?;
            ours.push(t.elapsed().as_secs_f64());
            assert!(s.is_finite() && !f.frc.is_empty());
        }
        Ok(ours)
    };
    let args = ["--side", &side.to_string(), "--repeats", &repeats.to_string()].map(String::from);
    let (row, _) = alternate(rounds, our_round, || {
        run_script::<SecondsOut>(
            python,
            "reference_metrics.py",
            &args,
            &[("OMP_NUM_THREADS", threads.to_string())],
        )
    })?
    .into_row(
        format!("metrics SSIM + FRC {side}²"),
        "pairs/s",
        1.0,
        "scikit-image + numpy (benches/reference_metrics.py)",
        1,
    );
    Ok(vec![BenchRow {
        device: "Cpu".into(),
        ..row
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_takes_rates_from_the_median_times_and_names_the_rounds() {
        let measured = Alternated {
            ours: vec![2.0, 4.0, 3.0],
            reference: vec![6.0, 5.0, 7.0],
            ratio: 1.8,
            rounds: 2,
            last_reference: "last",
        };
        let (row, last) = measured.into_row("x".into(), "items/s", 12.0, "numpy (y.py)", 3);
        assert_eq!(last, "last");
        assert_eq!((row.ours, row.reference), (4.0, 2.0));
        // the ratio is the median of the rounds', not the pooled one (2.0)
        assert_eq!(row.ratio, 1.8);
        assert_eq!(row.reference_name, "numpy (y.py), 2 rounds");
        assert_eq!(
            (row.name.as_str(), row.unit.as_str(), row.ours_threads),
            ("x", "items/s", 3)
        );
        assert_eq!(row.ours_seconds, [2.0, 4.0, 3.0]);
        assert_eq!(row.reference_seconds, [6.0, 5.0, 7.0]);
        assert!(row.reference_peak_rss_mb.is_nan());
    }

    #[test]
    fn alternating_rounds_interleave_the_sides_and_take_the_median_of_round_ratios() {
        let order = std::cell::RefCell::new(Vec::new());
        // ours 1, 1, 4 s and the reference 2, 1.5, 2 s: the rounds' ratios are
        // 2, 1.5, 0.5 (median 1.5), while pooling would give 2 / 1 = 2
        let mut ours_times = [1.0, 1.0, 4.0].into_iter();
        let mut reference_times = [2.0, 1.5, 2.0].into_iter();
        let measured = alternate(
            3,
            || {
                order.borrow_mut().push("ours");
                Ok(vec![ours_times.next().unwrap()])
            },
            || {
                order.borrow_mut().push("reference");
                Ok(ReferenceOut {
                    seconds: vec![reference_times.next().unwrap()],
                    peak_rss_mb: 1.0,
                })
            },
        )
        .unwrap();
        assert_eq!(
            *order.borrow(),
            ["ours", "reference", "ours", "reference", "ours", "reference"]
        );
        assert_eq!(measured.ratio, 1.5);
        assert_eq!(measured.ours, [1.0, 1.0, 4.0]);
        assert_eq!(measured.reference, [2.0, 1.5, 2.0]);
        assert_eq!(measured.rounds, 3);
        // zero rounds still measure once
        let once = alternate(
            0,
            || Ok(vec![1.0]),
            || {
                Ok(ReferenceOut {
                    seconds: vec![3.0],
                    peak_rss_mb: 1.0,
                })
            },
        )
        .unwrap();
        assert_eq!((once.rounds, once.ratio), (1, 3.0));
        // a failing reference stops the benchmark with its error
        let failed = alternate(
            2,
            || Ok(vec![1.0]),
            || -> Result<ReferenceOut> { Err(Error::value("reference", "crashed")) },
        );
        assert!(failed.is_err());
    }
}
