//! `reconstruct_iterative`: the epoch loop shared by the solvers, and what it
//! returns.
use std::time::Instant;

use ndarray::{Array2, Ix2};
use num_complex::Complex32;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::batch::{Batch, State, illumination};
use super::config::{Algorithm, IterativeConfig, Optimizer};
use super::epie::Epie;
use super::gradient::Gradient;
use super::grid::ScanGrid;
use crate::array::{parse_device, tensor_to_c64, tensor_to_f32};
use crate::data::Dataset;
use crate::data::product::canvas_shape;
use crate::error::{Error, Result};
use crate::physics::forward::shift_modulation;
use crate::recon::{ReconMetadata, Reconstruction};
use crate::runtime::SingleTorchThread;

/// Below this many pixels per mini-batch the CPU solver runs its ops on one
/// thread: each op then costs tens of microseconds, and waking libtorch's
/// worker threads for every one of them (with `OMP_WAIT_POLICY=passive`, as
/// on a shared machine) cost more than the work. Measured with
/// `ptycho bench iterative` (289 positions, N = 64, batches of 10, 2-core
/// CPU, passive waits): 4.2 epochs/s on two threads, 16 on one.
const SMALL_BATCH_PIXELS: i64 = 1 << 17;

/// Progress after one iteration (epoch).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IterationRecord {
    /// Iterations done, from 1.
    pub iteration: usize,
    /// `Σ (|Ψ̂| − A)² / Σ A²` over the iteration's batches, each evaluated
    /// with the object (and probe) it started from.
    pub data_error: f64,
    /// Wall time since the solver started (set-up included), seconds.
    pub seconds: f64,
}

/// Why the solver stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Ran the configured number of iterations.
    Iterations,
    /// The data error changed by less than `tolerance` over an iteration.
    Tolerance,
    /// The data error reached zero.
    ExactFit,
}

/// How an iterative reconstruction ran (stored in the reconstruction's `_metadata`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolverSummary {
    pub algorithm: Algorithm,
    pub config: IterativeConfig,
    /// The device it ran on (`Cpu`, `Cuda(0)`).
    pub device: String,
    pub iterations_run: usize,
    pub final_data_error: f64,
    pub stop_reason: StopReason,
    /// Data error after each iteration.
    pub data_errors: Vec<f64>,
    pub seconds_setup: f64,
    pub seconds_iterations: f64,
    /// Positions are rounded to whole pixels; the largest rounding, px.
    pub max_position_rounding_px: f64,
}

/// Everything a solver run produces.
#[derive(Debug, Clone, PartialEq)]
pub struct IterativeOutcome {
    /// Object, coverage and metadata (with [`SolverSummary`] in `metadata.solver`).
    pub reconstruction: Reconstruction,
    /// The final probe `[N, N]` (the dataset's unless `refine_probe`).
    pub probe: Array2<Complex32>,
    /// One record per iteration run.
    pub history: Vec<IterationRecord>,
}

/// Reconstructs the object of `ds` with an iterative solver, calling
/// `observer` after every iteration.
///
/// - The object starts at 1 on the dataset's object grid (its ground truth's
///   shape, else [`canvas_shape`]); the probe is the dataset's.
/// - Positions are rounded to whole pixels (exact for integer scans; the
///   largest rounding is reported in the summary). Windows that reach past
///   the grid are solved on a margin that is cropped away.
/// - Pixels no probe reaches keep the initial 1; `coverage` is `Σ |P|²` of
///   the final probe over all positions.
/// - Everything stays on `cfg.device`; the host reads one scalar (the data
///   error) per iteration. On the CPU the same seed gives a bit-identical
///   result; on CUDA the scatter-adds use atomics, so results can differ in
///   the last bits.
/// - On the CPU, mini-batches under 2¹⁷ pixels run on one libtorch thread
///   for the duration of the call (a process-wide setting, restored after):
///   their ops are too small to pay for waking other threads.
///
/// Errors: an invalid configuration or dataset (naming the field), or a
/// data error that becomes NaN/∞ (lower the steps).
pub fn reconstruct_iterative(
    ds: &Dataset,
    cfg: &IterativeConfig,
    observer: &mut dyn FnMut(&IterationRecord),
) -> Result<IterativeOutcome> {
    crate::runtime::keep_freed_memory();
    cfg.validate()?;
    ds.validate()?;
    let device = parse_device(&cfg.device)?;
    let _guard = tch::no_grad_guard();
    let started = Instant::now();
    let n = ds.patch_size() as i64;
    let _threads = (device == tch::Device::Cpu
        && (cfg.batch_size.min(ds.n_images()) as i64) * n * n < SMALL_BATCH_PIXELS)
        .then(SingleTorchThread::enter);
    let [h, w] = match &ds.object {
        Some(o) => [o.nrows(), o.ncols()],
        None => canvas_shape(&ds.positions_px, n as usize),
    };
    let grid = ScanGrid::new(&ds.positions_px, n, h as i64, w as i64, device)?;
    let len = grid.len();
    let amplitudes = ds.diffraction_tensor(device);
    let total_intensity = amplitudes.square().sum(Kind::Double).double_value(&[]);
    if total_intensity <= 0.0 {
        return Err(Error::value("diffraction", "is zero everywhere: nothing to fit"));
    }
    let modulation = shift_modulation(n, n, device);
    let probe = ds.probe_tensor(device);
    let probe_scale = probe.abs().max().double_value(&[]);
    let mut state = State {
        object: Tensor::ones([len], (Kind::ComplexFloat, device)),
        probe: &probe * &modulation,
    };
    let mut solver = match cfg.algorithm {
        Algorithm::Epie => Solver::Epie(Epie::new(cfg, len, device)),
        Algorithm::Gradient => Solver::Gradient(Box::new(Gradient::new(cfg, len, &state, &amplitudes, probe_scale))),
    };
    let count = ds.n_images();
    let batch_size = cfg.batch_size.min(count);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<i64> = (0..count as i64).collect();
    let seconds_setup = started.elapsed().as_secs_f64();
    let mut history: Vec<IterationRecord> = Vec::with_capacity(cfg.iterations);
    let mut stop_reason = StopReason::Iterations;
    for iteration in 1..=cfg.iterations {
        order.shuffle(&mut rng);
        let order_t = Tensor::from_slice(&order).to_device(device);
        let update_probe = cfg.refine_probe && iteration >= cfg.probe_start_iteration;
        let mut error = Tensor::zeros([], (Kind::Double, device));
        for start in (0..count).step_by(batch_size) {
            let size = batch_size.min(count - start) as i64;
            let members = order_t.narrow(0, start as i64, size);
            let batch = Batch {
                index: grid.indices.index_select(0, &members).view([-1]),
                amplitude: amplitudes.index_select(0, &members),
                size,
            };
            let e = match &mut solver {
                Solver::Epie(s) => s.step(&mut state, &batch, update_probe),
                Solver::Gradient(s) => s.step(&mut state, &batch, update_probe),
            };
            error += e;
        }
        let data_error = error.double_value(&[]) / total_intensity;
        if !data_error.is_finite() {
            return Err(Error::value(
                "iterative solver",
                format!("the data error became {data_error} in iteration {iteration}: lower the step sizes"),
            ));
        }
        let record = IterationRecord {
            iteration,
            data_error,
            seconds: started.elapsed().as_secs_f64(),
        };
        observer(&record);
        let previous = history.last().map(|r| r.data_error);
        history.push(record);
        if data_error == 0.0 {
            stop_reason = StopReason::ExactFit;
            break;
        }
        if let Some(p) = previous
            && ((p - data_error) / p).abs() < cfg.tolerance
        {
            stop_reason = StopReason::Tolerance;
            break;
        }
    }
    let seconds_iterations = started.elapsed().as_secs_f64() - seconds_setup;
    let everything = Batch {
        index: grid.indices.view([-1]),
        amplitude: Tensor::zeros([0], (Kind::Float, device)),
        size: count as i64,
    };
    let coverage = grid.crop(&illumination(&state.probe, &everything, len));
    let object = grid.crop(&state.object);
    let probe = &state.probe * &modulation;
    let last = history.last().expect("at least one iteration");
    let summary = SolverSummary {
        algorithm: cfg.algorithm,
        config: cfg.clone(),
        device: format!("{device:?}"),
        iterations_run: history.len(),
        final_data_error: last.data_error,
        stop_reason,
        data_errors: history.iter().map(|r| r.data_error).collect(),
        seconds_setup,
        seconds_iterations,
        max_position_rounding_px: grid.max_rounding_px,
    };
    let source = match cfg.algorithm {
        Algorithm::Epie => "iterative epie".to_string(),
        Algorithm::Gradient => format!(
            "iterative gradient ({}, {} loss)",
            match cfg.gradient.optimizer {
                Optimizer::Lsq => "lsq",
                Optimizer::Adam => "adam",
            },
            serde_json::to_value(cfg.gradient.loss)
                .expect("enum serialises")
                .as_str()
                .unwrap_or("?")
        ),
    };
    let reconstruction = Reconstruction {
        object: tensor_to_c64(&object)?.into_dimensionality::<Ix2>().expect("2-D"),
        coverage: tensor_to_f32(&coverage)?.into_dimensionality::<Ix2>().expect("2-D"),
        metadata: ReconMetadata {
            format: "ptycho-workbench/reconstruction".into(),
            source,
            bundle_sha256: None,
            n_groups: count,
            config: None,
            seconds_inference: seconds_iterations,
            seconds_stitch: 0.0,
            solver: Some(summary),
        },
    };
    Ok(IterativeOutcome {
        reconstruction,
        probe: tensor_to_c64(&probe)?.into_dimensionality::<Ix2>().expect("2-D"),
        history,
    })
}

enum Solver {
    Epie(Epie),
    Gradient(Box<Gradient>),
}
