//! `reconstruct_iterative`: the epoch loop shared by the solvers, and what it
//! returns.
use std::time::Instant;

use ndarray::{Array2, Array3, Ix2};
use num_complex::Complex32;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::auto::{SolverSettings, resolve};
use super::batch::{Batch, State, illumination};
use super::config::{Algorithm, IterativeConfig, Optimizer};
use super::epie::Epie;
use super::gradient::Gradient;
use super::grid::ScanGrid;
use super::positions::PositionState;
use crate::array::{parse_device, tensor_to_c64, tensor_to_f32};
use crate::data::Dataset;
use crate::data::defects::{DefectSummary, defect_mask};
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
    /// The configuration as given (`None`: chosen from the data).
    pub config: IterativeConfig,
    /// The settings the run used.
    pub settings: SolverSettings,
    /// The device it ran on (`Cpu`, `Cuda(0)`).
    pub device: String,
    pub iterations_run: usize,
    pub final_data_error: f64,
    pub stop_reason: StopReason,
    /// Data error after each iteration.
    pub data_errors: Vec<f64>,
    pub seconds_setup: f64,
    pub seconds_iterations: f64,
    /// Windows sit at whole pixels; the largest remainder of a position, px
    /// (taken up by shifting the probe with `config.subpixel`).
    pub max_position_rounding_px: f64,
    /// Set when the run started from another reconstruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitSummary>,
    /// Incoherent probe modes used (K), how many were added to the given
    /// ones, and each final mode's share of the power.
    #[serde(default = "one")]
    pub probe_modes: usize,
    #[serde(default)]
    pub added_probe_modes: usize,
    #[serde(default)]
    pub mode_powers: Vec<f64>,
    /// Detector defects left out of the fit (`None`: masking off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defects: Option<DefectSummary>,
    /// Position correction, when on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions: Option<PositionSummary>,
}

fn one() -> usize {
    1
}

/// What position correction did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionSummary {
    /// RMS move of the positions in each epoch that moved them, px.
    pub rms_move_px: Vec<f64>,
    /// RMS distance between the corrected and the given positions, px.
    pub rms_correction_px: f64,
    /// RMS distance of the given and of the corrected positions to the
    /// dataset's true positions, px (when it has them); and the same after
    /// removing the mean offset (a common translation the data cannot see).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truth: Option<PositionErrors>,
    /// RMS distance to the true positions (mean offset removed) after each
    /// epoch that moved the positions, px; empty without true positions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rms_error_by_epoch_px: Vec<f64>,
    /// Iterations whose end ran a global search ([`PositionConfig::search_at`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search_iterations: Vec<usize>,
}

/// Position errors against known true positions, px.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PositionErrors {
    pub rms_given_px: f64,
    pub rms_corrected_px: f64,
    pub rms_given_offset_removed_px: f64,
    pub rms_corrected_offset_removed_px: f64,
}

impl PositionSummary {
    fn new(
        ds: &Dataset,
        corrected: &Array2<f64>,
        rms_move_px: Vec<f64>,
        rms_error_by_epoch_px: Vec<f64>,
        search_iterations: Vec<usize>,
    ) -> PositionSummary {
        PositionSummary {
            rms_move_px,
            rms_error_by_epoch_px,
            search_iterations,
            rms_correction_px: rms_distance(corrected, &ds.positions_px, false),
            truth: ds.true_positions_px.as_ref().map(|t| PositionErrors {
                rms_given_px: rms_distance(&ds.positions_px, t, false),
                rms_corrected_px: rms_distance(corrected, t, false),
                rms_given_offset_removed_px: rms_distance(&ds.positions_px, t, true),
                rms_corrected_offset_removed_px: rms_distance(corrected, t, true),
            }),
        }
    }
}

/// RMS Euclidean distance between two position lists `[n, 2]`, optionally
/// after removing their mean difference.
pub fn rms_distance(a: &Array2<f64>, b: &Array2<f64>, remove_offset: bool) -> f64 {
    let d = a - b;
    let mean = if remove_offset {
        d.mean_axis(ndarray::Axis(0)).expect("non-empty")
    } else {
        ndarray::Array1::zeros(2)
    };
    let sum: f64 = d
        .outer_iter()
        .map(|r| (r[0] - mean[0]).powi(2) + (r[1] - mean[1]).powi(2))
        .sum();
    (sum / d.nrows() as f64).sqrt()
}

/// The measured amplitudes on the device, with −1 at the measurements the
/// defect mask leaves out (`cfg.mask`); whether any are; what was found.
fn fitted_amplitudes(
    ds: &Dataset,
    cfg: &IterativeConfig,
    device: tch::Device,
) -> (Tensor, bool, Option<DefectSummary>) {
    if !cfg.mask.enabled {
        return (ds.diffraction_tensor(device), false, None);
    }
    let (fitted, summary) = defect_mask(ds, cfg.mask.saturation_counts, cfg.mask.dead_pixels);
    if fitted.iter().all(|&f| f) {
        return (ds.diffraction_tensor(device), false, Some(summary));
    }
    let mut a = ds.diffraction.clone();
    a.zip_mut_with(&fitted, |v, &f| {
        if !f {
            *v = -1.0;
        }
    });
    (crate::array::f32_to_tensor(&a, device), true, Some(summary))
}

/// Where a solver run starts instead of a flat object and the dataset's
/// probe: another reconstruction (`ptycho reconstruct --init`, a network's
/// inference in `ptycho infer --refine`).
#[derive(Debug, Clone, PartialEq)]
pub struct IterativeInit {
    /// The starting object on the dataset's object grid `[H, W]` (the
    /// truth's shape, else [`canvas_shape`]).
    pub object: Array2<Complex32>,
    /// Where `object` holds a reconstruction (> 0), `[H, W]`; the other
    /// pixels start at the covered pixels' mean amplitude (with the phase of
    /// their complex sum). `None`: everywhere.
    pub coverage: Option<Array2<f32>>,
    /// A starting probe `[N, N]` (a refined one); `None` = the dataset's.
    pub probe: Option<Array2<Complex32>>,
    /// What it came from (recorded in the summary), e.g. a file name.
    pub source: String,
}

/// How a run was started from an [`IterativeInit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitSummary {
    pub source: String,
    /// The factor the starting object was multiplied by so that its far
    /// field carries the measured energy (`sqrt(Σ A² / Σ |F(P·O_k)|²)`):
    /// a network's amplitude is only known up to its intensity scale.
    pub amplitude_factor: f64,
    /// Pixels of the output grid that had no coverage and started at the
    /// covered mean.
    pub filled_pixels: usize,
    /// Whether the probe came with it.
    pub probe_given: bool,
}

/// Everything a solver run produces.
#[derive(Debug, Clone, PartialEq)]
pub struct IterativeOutcome {
    /// Object, coverage and metadata (with [`SolverSummary`] in `metadata.solver`).
    pub reconstruction: Reconstruction,
    /// The final probe `[N, N]` (the dataset's unless `refine_probe`): the
    /// first of `probe_modes`.
    pub probe: Array2<Complex32>,
    /// Every final probe mode `[K, N, N]`, strongest first.
    pub probe_modes: Array3<Complex32>,
    /// The corrected positions `[n, 2]` `(x, y)` px, with position correction.
    pub positions_px: Option<Array2<f64>>,
    /// One record per iteration run.
    pub history: Vec<IterationRecord>,
    /// The object `[H, W]` after each iteration asked for with
    /// [`reconstruct_iterative_snapshots`] (in iteration order; empty otherwise).
    pub snapshots: Vec<(usize, Array2<Complex32>)>,
}

/// Reconstructs the object of `ds` with an iterative solver, calling
/// `observer` after every iteration.
///
/// - The object starts at 1 on the dataset's object grid (its ground truth's
///   shape, else [`canvas_shape`]); the probe is the dataset's.
/// - Each position's window is its nearest whole pixel; the remainder
///   shifts the probe (a Fourier shift, `IterativeConfig::subpixel`; exact
///   for integer scans, which skip it). Windows that reach past the grid
///   are solved on a margin that is cropped away.
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
    reconstruct_iterative_from(ds, cfg, None, observer)
}

/// [`reconstruct_iterative`] starting from `init` (object, and probe when
/// given) instead of a flat object and the dataset's probe. The object is
/// first scaled so that its far field carries the measured energy, and
/// pixels without coverage start at the covered mean (see
/// [`IterativeInit`]); the margin outside the output grid (where windows
/// reach past it) starts at 1 times the same factor. Errors: an object or
/// probe of the wrong shape or with NaN/∞.
pub fn reconstruct_iterative_from(
    ds: &Dataset,
    cfg: &IterativeConfig,
    init: Option<&IterativeInit>,
    observer: &mut dyn FnMut(&IterationRecord),
) -> Result<IterativeOutcome> {
    reconstruct_iterative_snapshots(ds, cfg, init, &[], observer)
}

/// [`reconstruct_iterative_from`] that also keeps the object after each
/// iteration in `snapshot_at` (1-based; those past the last iteration run
/// are skipped) in [`IterativeOutcome::snapshots`]: one run shows what
/// every iteration budget gives (the quality suite, tuning, a notebook
/// watching the solver converge). Each snapshot copies the object to the host.
pub fn reconstruct_iterative_snapshots(
    ds: &Dataset,
    cfg: &IterativeConfig,
    init: Option<&IterativeInit>,
    snapshot_at: &[usize],
    observer: &mut dyn FnMut(&IterationRecord),
) -> Result<IterativeOutcome> {
    crate::runtime::keep_freed_memory();
    cfg.validate()?;
    ds.validate()?;
    let settings = resolve(cfg, ds)?;
    if cfg.refine_probe && cfg.probe_start_iteration > settings.iterations {
        return Err(Error::config(
            "probe_start_iteration",
            format!(
                "must be in 1..={} (the iterations run) when refine_probe is on, got {}",
                settings.iterations, cfg.probe_start_iteration
            ),
        ));
    }
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
    let refine_positions = cfg.positions.refine;
    // room for the positions to move into when they are corrected
    let margin_px = if refine_positions {
        cfg.positions.margin_px as i64
    } else {
        0
    };
    let mut grid = ScanGrid::with_margin(&ds.positions_px, n, h as i64, w as i64, margin_px, device)?;
    let len = grid.len();
    // shift the probe only where some position is (or may move) off the pixel grid
    let subpixel = cfg.subpixel && (grid.max_rounding_px > 1e-6 || refine_positions);
    let (amplitudes, masked, defects) = fitted_amplitudes(ds, cfg, device);
    let total_intensity = amplitudes.clamp_min(0.0).square().sum(Kind::Double).double_value(&[]);
    if total_intensity <= 0.0 {
        return Err(Error::value("diffraction", "is zero everywhere: nothing to fit"));
    }
    let modulation = shift_modulation(n, n, device);
    let given_modes = probe_modes_of(ds, init.and_then(|i| i.probe.as_ref()), "init probe")?;
    let mode_count = cfg.probe_modes.unwrap_or(given_modes.shape()[0]);
    let (modes, added_modes) = super::modes::probe_modes(&given_modes, mode_count, cfg.new_mode_power)?;
    let probe = crate::array::c64_to_tensor(&modes, device);
    let probe_scale = probe.abs().max().double_value(&[]);
    let mut state = State {
        object: Tensor::ones([len], (Kind::ComplexFloat, device)),
        probe: &probe * &modulation,
    };
    let init_summary = match init {
        None => None,
        Some(i) => {
            let (object, filled_pixels) = start_object(i, [h, w])?;
            state.object = grid.embed(&crate::array::c64_to_tensor(&object, device), 1.0);
            // Σ |F(P·O_k)|² over every position, in chunks
            let mut predicted = Tensor::zeros([], (Kind::Double, device));
            for chunk in position_chunks(&grid, Some(&amplitudes), subpixel, masked) {
                let fwd = super::batch::Forward::new(&state, &chunk);
                predicted += chunk.where_fitted(fwd.amplitude.square(), 0.0).sum(Kind::Double);
            }
            let predicted = predicted.double_value(&[]);
            if !(predicted.is_finite() && predicted > 0.0) {
                return Err(Error::value(
                    "init object",
                    "its far field is zero (or not finite) at every position: nothing to scale",
                ));
            }
            let amplitude_factor = (total_intensity / predicted).sqrt();
            state.object = &state.object * amplitude_factor;
            Some(InitSummary {
                source: i.source.clone(),
                amplitude_factor,
                filled_pixels,
                probe_given: i.probe.is_some(),
            })
        }
    };
    let mut solver = match cfg.algorithm {
        Algorithm::Epie => Solver::Epie(Epie::new(cfg, &settings, len, device)),
        Algorithm::Gradient => Solver::Gradient(Box::new(Gradient::new(
            cfg,
            &settings,
            len,
            &state,
            &amplitudes,
            probe_scale,
        ))),
    };
    let count = ds.n_images();
    let batch_size = cfg.batch_size.min(count);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<i64> = (0..count as i64).collect();
    let seconds_setup = started.elapsed().as_secs_f64();
    let mut history: Vec<IterationRecord> = Vec::with_capacity(settings.iterations);
    let mut stop_reason = StopReason::Iterations;
    let mut snapshots = Vec::new();
    let mut positions =
        refine_positions.then(|| PositionState::new(&ds.positions_px, &cfg.positions, grid.position_range(), device));
    let mut position_moves_px = Vec::new();
    let (mut position_errors_px, mut search_iterations) = (Vec::new(), Vec::new());
    for iteration in 1..=settings.iterations {
        order.shuffle(&mut rng);
        let order_t = Tensor::from_slice(&order).to_device(device);
        let update_probe = cfg.refine_probe && iteration >= cfg.probe_start_iteration;
        let move_positions = refine_positions && iteration >= cfg.positions.start_iteration;
        let mut error = Tensor::zeros([], (Kind::Double, device));
        for start in (0..count).step_by(batch_size) {
            let size = batch_size.min(count - start) as i64;
            let members = order_t.narrow(0, start as i64, size);
            let batch = Batch {
                index: grid.indices.index_select(0, &members).view([-1]),
                amplitude: amplitudes.index_select(0, &members),
                masked,
                size,
                shifts: subpixel.then(|| grid.remainders.index_select(0, &members)),
            };
            let step = match &mut solver {
                Solver::Epie(s) => s.step(&mut state, &batch, update_probe, move_positions),
                Solver::Gradient(s) => s.step(&mut state, &batch, update_probe, move_positions),
            };
            error += step.error;
            if let (Some(p), Some(shift)) = (positions.as_mut(), step.shift.as_ref()) {
                p.record(&members, shift);
            }
        }
        if update_probe && mode_count > 1 {
            state.probe = super::modes::orthogonalize(&state.probe);
        }
        if let Some(p) = positions.as_mut().filter(|_| move_positions) {
            let before = p.positions_px.clone();
            p.apply()?;
            grid.move_to(&p.positions_px)?;
            if let Some((radius, stride)) = cfg.positions.search_at(iteration) {
                let tried = super::search::offsets(radius, stride);
                let (best, _) = super::search::best_offsets(&state, &grid, &amplitudes, masked, subpixel, &tried);
                p.apply_offsets(&best)?;
                grid.move_to(&p.positions_px)?;
                search_iterations.push(iteration);
            }
            position_moves_px.push(rms_distance(&p.positions_px, &before, false));
            if let Some(t) = &ds.true_positions_px {
                position_errors_px.push(rms_distance(&p.positions_px, t, true));
            }
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
        if snapshot_at.contains(&iteration) {
            let object = tensor_to_c64(&grid.crop(&state.object))?
                .into_dimensionality::<Ix2>()
                .expect("2-D");
            snapshots.push((iteration, object));
        }
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
    let mut coverage = Tensor::zeros([len], (Kind::Float, device));
    for chunk in position_chunks(&grid, None, subpixel, false) {
        coverage += illumination(&state.probe, &chunk, len);
    }
    let coverage = grid.crop(&coverage);
    let object = grid.crop(&state.object);
    let probe_modes: Array3<Complex32> = tensor_to_c64(&(&state.probe * &modulation))?
        .into_dimensionality()
        .expect("3-D");
    let corrected = positions.map(|p| p.positions_px);
    let position_summary = corrected
        .as_ref()
        .map(|c| PositionSummary::new(ds, c, position_moves_px, position_errors_px, search_iterations));
    let last = history.last().expect("at least one iteration");
    let summary = SolverSummary {
        algorithm: cfg.algorithm,
        config: cfg.clone(),
        settings,
        device: format!("{device:?}"),
        iterations_run: history.len(),
        final_data_error: last.data_error,
        stop_reason,
        data_errors: history.iter().map(|r| r.data_error).collect(),
        seconds_setup,
        seconds_iterations,
        max_position_rounding_px: grid.max_rounding_px,
        init: init_summary,
        probe_modes: mode_count,
        added_probe_modes: added_modes,
        mode_powers: super::modes::mode_powers(&probe_modes),
        defects,
        positions: position_summary,
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
            refinement: None,
            adaptation: None,
            selection: None,
        },
    };
    Ok(IterativeOutcome {
        reconstruction,
        probe: probe_modes.index_axis(ndarray::Axis(0), 0).to_owned(),
        probe_modes,
        positions_px: corrected,
        history,
        snapshots,
    })
}

fn len_positions(grid: &ScanGrid) -> i64 {
    grid.indices.size()[0]
}

/// Every position in scan order, as batches of up to 256 (with their
/// measured amplitudes when given, else an empty tensor; with their
/// sub-pixel shifts when `subpixel`): the passes over the whole scan that
/// are not solver steps (scaling a start, the coverage, a data misfit).
fn position_chunks<'a>(
    grid: &'a ScanGrid,
    amplitudes: Option<&'a Tensor>,
    subpixel: bool,
    masked: bool,
) -> impl Iterator<Item = Batch> + 'a {
    let total = len_positions(grid);
    (0..total).step_by(256).map(move |start| {
        let size = 256.min(total - start);
        Batch {
            index: grid.indices.narrow(0, start, size).reshape([-1]),
            amplitude: amplitudes.map_or_else(
                || Tensor::zeros([0], (Kind::Float, grid.indices.device())),
                |a| a.narrow(0, start, size),
            ),
            masked: masked && amplitudes.is_some(),
            size,
            shifts: subpixel.then(|| grid.remainders.narrow(0, start, size)),
        }
    })
}

/// The probe modes `[K, N, N]` a solver pass uses: `given` (one mode,
/// checked as `what`) or the dataset's.
fn probe_modes_of(ds: &Dataset, given: Option<&Array2<Complex32>>, what: &str) -> Result<Array3<Complex32>> {
    match given {
        Some(p) => {
            let n = ds.patch_size();
            check_init_array(what, p, [n, n])?;
            Ok(p.clone().insert_axis(ndarray::Axis(0)))
        }
        None => Ok(ds.probe_modes()),
    }
}

fn check_init_array(what: &str, a: &Array2<Complex32>, shape: [usize; 2]) -> Result<()> {
    if a.shape() != shape {
        return Err(Error::shape(what, format!("{shape:?}"), format!("{:?}", a.shape())));
    }
    match a.indexed_iter().find(|(_, v)| !(v.re.is_finite() && v.im.is_finite())) {
        None => Ok(()),
        Some(((i, j), v)) => Err(Error::value(what, format!("contains {v} at pixel (row {i}, col {j})"))),
    }
}

/// The starting object: `init.object` where covered, the covered pixels'
/// mean amplitude with the phase of their sum elsewhere; and how many
/// pixels were filled.
pub(crate) fn start_object(init: &IterativeInit, shape: [usize; 2]) -> Result<(Array2<Complex32>, usize)> {
    check_init_array("init object", &init.object, shape)?;
    let Some(coverage) = &init.coverage else {
        return Ok((init.object.clone(), 0));
    };
    if coverage.shape() != shape {
        return Err(Error::shape(
            "init coverage",
            format!("{shape:?}"),
            format!("{:?}", coverage.shape()),
        ));
    }
    let (mut sum, mut amp, mut count) = (num_complex::Complex64::new(0.0, 0.0), 0.0, 0usize);
    for (v, &c) in init.object.iter().zip(coverage.iter()) {
        if c > 0.0 {
            sum += num_complex::Complex64::new(v.re as f64, v.im as f64);
            amp += v.norm() as f64;
            count += 1;
        }
    }
    if count == 0 {
        return Err(Error::value(
            "init coverage",
            "is zero everywhere: the init object covers nothing",
        ));
    }
    let phase = if sum.norm() > 0.0 { sum.arg() } else { 0.0 };
    let fill = Complex32::from_polar((amp / count as f64) as f32, phase as f32);
    let mut object = init.object.clone();
    let mut filled = 0;
    for (v, &c) in object.iter_mut().zip(coverage.iter()) {
        if c.is_nan() || c <= 0.0 {
            *v = fill;
            filled += 1;
        }
    }
    Ok((object, filled))
}

enum Solver {
    Epie(Epie),
    Gradient(Box<Gradient>),
}

/// How well `object` (with `probe`, else the dataset's probe modes) explains the
/// patterns of `ds`: `Σ (a·|F(P·O_k)| − A_k)² / Σ A_k²` over every position
/// and pixel, with the one scale `a ≥ 0` that fits best (a network's
/// object is known only up to its intensity scale). The forward model is
/// the solvers' (sub-pixel positions shift the probe when `subpixel`), so
/// the number is comparable with their data error. `object` is the image
/// the positions index (`[H, W]`, e.g. a reconstruction of the same scan);
/// windows reaching past it see 1. Used to score reconstructions on
/// patterns they did not see ([`crate::recon::select`]).
///
/// # Shapes
/// `object`: `[H, W]`, `probe`: `[N, N]` with `N` the dataset's patch size.
///
/// Errors: shapes that disagree, NaN/∞ in the object, or a dataset without
/// counts.
pub fn data_error(
    ds: &Dataset,
    object: &Array2<Complex32>,
    probe: Option<&Array2<Complex32>>,
    subpixel: bool,
    device: tch::Device,
) -> Result<f64> {
    Ok(pattern_misfit(ds, object, probe, subpixel, device)?.amplitude)
}

/// Two measures of how well an object explains a dataset's patterns, each
/// with its own best overall scale of the predicted intensity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Misfit {
    /// [`data_error`]: `Σ (a·|Ψ| − A)² / Σ A²`.
    pub amplitude: f64,
    /// The Poisson deviance of the intensities `I = A²` (the measured counts
    /// over the dataset's intensity scale) against `μ = b·|Ψ|²`, over `Σ I`:
    /// `2 Σ [I·ln(I/μ) − (I − μ)] / Σ I` with the best `b = Σ I / Σ |Ψ|²`.
    /// Times the intensity scale, it is the deviance of the counts.
    pub poisson: f64,
}

/// [`data_error`] and the Poisson deviance of the same predictions ([`Misfit`]).
pub fn pattern_misfit(
    ds: &Dataset,
    object: &Array2<Complex32>,
    probe: Option<&Array2<Complex32>>,
    subpixel: bool,
    device: tch::Device,
) -> Result<Misfit> {
    ds.validate()?;
    let n = ds.patch_size() as i64;
    let [h, w] = [object.nrows(), object.ncols()];
    check_init_array("object", object, [h, w])?;
    let [need_h, need_w] = canvas_shape(&ds.positions_px, n as usize);
    if need_h > h + 1 || need_w > w + 1 {
        return Err(Error::shape(
            "object",
            format!("at least the scan's canvas [{need_h}, {need_w}]"),
            format!("[{h}, {w}]"),
        ));
    }
    let _guard = tch::no_grad_guard();
    let grid = ScanGrid::new(&ds.positions_px, n, h as i64, w as i64, device)?;
    let probe = crate::array::c64_to_tensor(&probe_modes_of(ds, probe, "probe")?, device);
    let state = State {
        object: grid.embed(&crate::array::c64_to_tensor(object, device), 1.0),
        probe: &probe * shift_modulation(n, n, device),
    };
    let amplitudes = ds.diffraction_tensor(device);
    let subpixel = subpixel && grid.max_rounding_px > 1e-6;
    // Σ A², Σ |Ψ|·A, Σ |Ψ|², Σ I·ln I, Σ I·ln |Ψ|² (I = A², where I > 0)
    let mut sums = Tensor::zeros([5], (Kind::Double, device));
    for chunk in position_chunks(&grid, Some(&amplitudes), subpixel, false) {
        let predicted = super::batch::Forward::new(&state, &chunk)
            .amplitude
            .to_kind(Kind::Double);
        let measured = chunk.amplitude.to_kind(Kind::Double);
        let intensity = measured.square();
        let counted = intensity.gt(0.0);
        let (mu, floor) = (predicted.square(), 1e-30);
        sums += Tensor::stack(
            &[
                intensity.sum(Kind::Double),
                (&predicted * &measured).sum(Kind::Double),
                mu.sum(Kind::Double),
                (&intensity * intensity.clamp_min(floor).log())
                    .where_self(&counted, &intensity.zeros_like())
                    .sum(Kind::Double),
                (&intensity * mu.clamp_min(floor).log())
                    .where_self(&counted, &intensity.zeros_like())
                    .sum(Kind::Double),
            ],
            0,
        );
    }
    let sums: Vec<f64> = Vec::<f64>::try_from(&sums.to_device(tch::Device::Cpu))
        .map_err(|e| Error::value("data error", e.to_string()))?;
    let (aa, pa, pp, i_ln_i, i_ln_mu) = (sums[0], sums[1], sums[2], sums[3], sums[4]);
    if aa.is_nan() || aa <= 0.0 {
        return Err(Error::value(
            "diffraction",
            "is zero everywhere: nothing to compare with",
        ));
    }
    // the best scale is pa/pp (never negative: both sums are ≥ 0)
    let residual = if pp > 0.0 { aa - pa * pa / pp } else { aa };
    // with b = Σ I / Σ μ the linear terms cancel: D/2 = Σ I ln I − Σ I ln μ − Σ I ln b
    let poisson = if pp > 0.0 {
        2.0 * (i_ln_i - i_ln_mu - aa * (aa / pp).ln()) / aa
    } else {
        f64::INFINITY
    };
    Ok(Misfit {
        amplitude: (residual / aa).max(0.0),
        poisson: poisson.max(0.0),
    })
}
