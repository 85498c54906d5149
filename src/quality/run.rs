//! Running a quality suite: per case, simulate and split (cached on disk),
//! train the networks its arms need (cached: a finished job with the same
//! configuration is reused, so an interrupted suite resumes), reconstruct
//! the test half with every arm, and compare each with the truth exactly as
//! `ptycho compare` does.
use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::Array2;
use num_complex::Complex32;
use serde::{Deserialize, Serialize};

use super::config::{Arm, QualityCase, QualitySuite};
use crate::bundle::Bundle;
use crate::compare::{RegisterPolicy, compare_all, default_align, with_score_pixels};
use crate::data::atomic::write_bytes_atomic;
use crate::data::{Dataset, SplitAxis, read_dataset, write_npz};
use crate::error::{Error, Result};
use crate::job::{CONFIG_FILE, JobResult, JobSpec, RESULT_FILE, train_job};
use crate::metrics::Comparison;
use crate::model::{ModelConfig, ModelKind};
use crate::recon::iterative::{IterativeConfig, reconstruct_iterative, reconstruct_iterative_snapshots};
use crate::recon::{ReconConfig, Reconstruction, write_recon_npz};
use crate::simulate::simulate;
use crate::train::{TrainConfig, TrainObserver};

/// The ePIE settings `(α, max_weight)` the oracle arm tries, each scored
/// after every iteration of [`ORACLE_ITERATIONS`]: the corners of what the
/// development data favoured (docs/quality.md §2), and the sparse setting.
pub const ORACLE_SETTINGS: [(f64, f64); 7] = [
    (0.1, 0.1),
    (0.1, 0.5),
    (0.3, 0.1),
    (0.3, 0.5),
    (1.0, 0.1),
    (1.0, 0.5),
    (0.03, 1.0),
];
pub const ORACLE_ITERATIONS: [usize; 7] = [3, 5, 10, 20, 50, 100, 200];

/// One arm's result on one case (a row of the suite's table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmResult {
    pub case: String,
    pub arm: String,
    /// `ok` or `failed` (then `error` says why and the metrics are absent).
    pub status: String,
    pub error: Option<String>,
    pub amp_ssim: Option<f64>,
    pub phase_ssim: Option<f64>,
    pub amp_ms_ssim: Option<f64>,
    pub phase_ms_ssim: Option<f64>,
    pub amp_psnr: Option<f64>,
    pub phase_psnr: Option<f64>,
    /// FRC50 crossing of the phase, rings (`None`: never crossed or failed).
    pub phase_frc50: Option<f64>,
    /// Phase SSIM with the `span` phase range (stricter than `unit`).
    pub phase_ssim_span: Option<f64>,
    /// Share of the metric crop that was scored (illuminated cases).
    pub scored_fraction: Option<f64>,
    /// Training wall time of the network(s) the arm used (0 when reused from an earlier run).
    pub seconds_train: f64,
    /// Reconstruction wall time (inference + stitching, or the solver).
    pub seconds_reconstruct: f64,
    /// What the arm chose or found (settings, iterations, the oracle's best).
    pub detail: String,
}

impl ArmResult {
    fn failed(case: &str, arm: Arm, error: String) -> ArmResult {
        ArmResult {
            case: case.into(),
            arm: arm.name().into(),
            status: "failed".into(),
            error: Some(error),
            amp_ssim: None,
            phase_ssim: None,
            amp_ms_ssim: None,
            phase_ms_ssim: None,
            amp_psnr: None,
            phase_psnr: None,
            phase_frc50: None,
            phase_ssim_span: None,
            scored_fraction: None,
            seconds_train: 0.0,
            seconds_reconstruct: 0.0,
            detail: String::new(),
        }
    }

    fn scored(case: &str, arm: Arm, c: &Comparison, span: &Comparison) -> ArmResult {
        ArmResult {
            status: "ok".into(),
            error: None,
            amp_ssim: Some(c.amplitude.ssim),
            phase_ssim: Some(c.phase.ssim),
            amp_ms_ssim: Some(c.amplitude.ms_ssim),
            phase_ms_ssim: Some(c.phase.ms_ssim),
            amp_psnr: Some(c.amplitude.psnr),
            phase_psnr: Some(c.phase.psnr),
            phase_frc50: c.phase.frc50,
            phase_ssim_span: Some(span.phase.ssim),
            scored_fraction: c.alignment.scored_fraction,
            ..ArmResult::failed(case, arm, String::new())
        }
    }
}

/// How to run a suite.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where cases keep their data, networks and reconstructions.
    pub work_dir: PathBuf,
    /// Retrain and resimulate even when a cached result matches.
    pub force: bool,
}

/// A case's test part (with its truth); the train part stays on disk.
struct CaseData {
    test: Dataset,
}

/// Runs every case of `suite`, reporting each finished arm to `progress`.
pub fn run_suite(
    suite: &QualitySuite,
    opts: &RunOptions,
    progress: &mut dyn FnMut(&ArmResult),
    observer: &mut dyn TrainObserver,
) -> Result<Vec<ArmResult>> {
    suite.validate()?;
    let mut rows = Vec::new();
    for case in &suite.cases {
        rows.extend(run_case(suite, case, opts, progress, observer)?);
    }
    Ok(rows)
}

fn run_case(
    suite: &QualitySuite,
    case: &QualityCase,
    opts: &RunOptions,
    progress: &mut dyn FnMut(&ArmResult),
    observer: &mut dyn TrainObserver,
) -> Result<Vec<ArmResult>> {
    let dir = opts.work_dir.join(&case.name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let data = prepare_data(case, &dir, opts.force)?;
    let net_dir = match &case.reuse_networks_of {
        Some(other) => opts.work_dir.join(other),
        None => dir.clone(),
    };
    let align = with_score_pixels(default_align(&data.test, 0.0)?, &data.test, case.score_pixels)?;
    let span = crate::metrics::AlignConfig {
        phase_scale: crate::metrics::PhaseScale::TruthSpan,
        ..align.clone()
    };
    let device = crate::array::parse_device(&suite.device)?;
    let mut rows = Vec::new();
    for &arm in suite.arms_of(case) {
        let outcome = reconstruct_arm(suite, case, arm, &data, &align, &net_dir, &dir, device, opts, observer);
        let row = match outcome {
            Err(e) => ArmResult::failed(&case.name, arm, e.to_string()),
            Ok(r) => {
                let register = [RegisterPolicy::Auto.registers(Some(&r.source))];
                let scored = compare_all(&data.test, &[(arm.name().into(), r.object.clone())], &align, &register)
                    .and_then(|mut c| {
                        let s = compare_all(&data.test, &[(arm.name().into(), r.object.clone())], &span, &register)?;
                        Ok((c.remove(0), s.into_iter().next().expect("one")))
                    });
                match scored {
                    Ok((c, s)) => ArmResult {
                        seconds_train: r.seconds_train,
                        seconds_reconstruct: r.seconds_reconstruct,
                        detail: r.detail,
                        ..ArmResult::scored(&case.name, arm, &c, &s)
                    },
                    Err(e) => ArmResult::failed(&case.name, arm, e.to_string()),
                }
            }
        };
        progress(&row);
        rows.push(row);
    }
    let json = serde_json::to_vec_pretty(&rows).expect("rows serialise");
    write_bytes_atomic(&dir.join("results.json"), &json)?;
    Ok(rows)
}

/// Simulates and splits the case (test part from `test_sim` when given),
/// reusing `dir/data/` when it was made from the same configuration.
fn prepare_data(case: &QualityCase, dir: &Path, force: bool) -> Result<CaseData> {
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).map_err(|e| Error::io(&data_dir, e))?;
    let key = serde_json::to_vec_pretty(&(&case.sim, &case.test_sim, case.split_fraction)).expect("serialises");
    let (train, test, key_file) = (
        data_dir.join("train.npz"),
        data_dir.join("test.npz"),
        data_dir.join("sim.json"),
    );
    let cached =
        !force && train.exists() && test.exists() && std::fs::read(&key_file).ok().as_deref() == Some(&key[..]);
    if !cached {
        let ds = simulate(&case.sim)?;
        let (tr, te) = ds.split(SplitAxis::Y, case.split_fraction)?;
        let te = match &case.test_sim {
            None => te,
            Some(t) => simulate(t)?.split(SplitAxis::Y, case.split_fraction)?.1,
        };
        write_npz(&tr, &train)?;
        write_npz(&te, &test)?;
        write_bytes_atomic(&key_file, &key)?;
    }
    Ok(CaseData {
        test: read_dataset(&test)?,
    })
}

/// What an arm reconstructed.
struct ArmRecon {
    object: Array2<Complex32>,
    source: String,
    seconds_train: f64,
    seconds_reconstruct: f64,
    detail: String,
}

#[allow(clippy::too_many_arguments)]
fn reconstruct_arm(
    suite: &QualitySuite,
    case: &QualityCase,
    arm: Arm,
    data: &CaseData,
    align: &crate::metrics::AlignConfig,
    net_dir: &Path,
    dir: &Path,
    device: tch::Device,
    opts: &RunOptions,
    observer: &mut dyn TrainObserver,
) -> Result<ArmRecon> {
    let iterative = |cfg: IterativeConfig| -> Result<ArmRecon> {
        let started = Instant::now();
        let out = reconstruct_iterative(&data.test, &cfg, &mut |_| {})?;
        let seconds = started.elapsed().as_secs_f64();
        write_recon_npz(&out.reconstruction, &dir.join(format!("recon_{}.npz", arm.name())))?;
        let summary = out.reconstruction.metadata.solver.as_ref().expect("solver summary");
        Ok(ArmRecon {
            detail: format!(
                "{} iterations, {}",
                summary.iterations_run,
                serde_json::to_string(&summary.settings).unwrap_or_default()
            ),
            object: out.reconstruction.object,
            source: out.reconstruction.metadata.source,
            seconds_train: 0.0,
            seconds_reconstruct: seconds,
        })
    };
    let device_name = suite.device.clone();
    match arm {
        Arm::Constant => Ok(ArmRecon {
            object: Array2::from_elem(
                data.test.object.as_ref().map_or((1, 1), |o| o.dim()),
                Complex32::new(1.0, 0.0),
            ),
            source: "constant".into(),
            seconds_train: 0.0,
            seconds_reconstruct: 0.0,
            detail: "amplitude 1, phase 0".into(),
        }),
        Arm::Epie => iterative(IterativeConfig {
            device: device_name,
            ..IterativeConfig::epie()
        }),
        Arm::Gradient => iterative(IterativeConfig {
            device: device_name,
            ..IterativeConfig::gradient()
        }),
        Arm::EpieOracle => oracle(data, align, device_name),
        Arm::PinnGs1 | Arm::PinnGs2 | Arm::Supervised | Arm::Hybrid | Arm::Best => {
            let network = if matches!(arm, Arm::Hybrid | Arm::Best) {
                case.hybrid_network
            } else {
                arm
            };
            let (kind, gridsize) = match network {
                Arm::PinnGs1 => (ModelKind::Pinn, 1),
                Arm::Supervised => (ModelKind::Supervised, 1),
                _ => (ModelKind::Pinn, 2),
            };
            let (bundle_path, seconds_train) = trained_bundle(suite, case, kind, gridsize, net_dir, opts, observer)?;
            let bundle = Bundle::load(&bundle_path, device)?;
            let cfg = match arm {
                Arm::Hybrid => ReconConfig::hybrid(),
                Arm::Best => ReconConfig::best(),
                _ => ReconConfig::default(),
            };
            let started = Instant::now();
            let recon: Reconstruction = bundle.reconstruct(&data.test, &cfg)?;
            let seconds = started.elapsed().as_secs_f64();
            write_recon_npz(&recon, &dir.join(format!("recon_{}.npz", arm.name())))?;
            let mut detail = match (&recon.metadata.refinement, &recon.metadata.solver) {
                (Some(r), _) => format!("network, then {} iterations", r.iterations_run),
                (None, Some(s)) => format!("solver only, {} iterations", s.iterations_run),
                (None, None) => "network only".into(),
            };
            if let Some(s) = &recon.metadata.selection {
                detail = format!("{detail} (chosen; held-out misfit: {})", s.scores());
            }
            Ok(ArmRecon {
                object: recon.object,
                source: recon.metadata.source,
                seconds_train,
                seconds_reconstruct: seconds,
                detail,
            })
        }
    }
}

/// The bundle of the case's network of this kind and gridsize: trained now,
/// or reused when `net_dir` holds a finished job with the same configuration.
#[allow(clippy::too_many_arguments)]
fn trained_bundle(
    suite: &QualitySuite,
    case: &QualityCase,
    kind: ModelKind,
    gridsize: usize,
    net_dir: &Path,
    opts: &RunOptions,
    observer: &mut dyn TrainObserver,
) -> Result<(PathBuf, f64)> {
    let t = suite.training_of(case);
    let mut train = match t.preset.as_str() {
        "paper" => TrainConfig::paper(),
        _ => TrainConfig::quick(),
    };
    if let Some(e) = t.epochs {
        train.epochs = e;
    }
    if let Some(g) = t.n_groups {
        train.grouping.n_groups = Some(g);
    }
    train.seed = t.seed;
    train.grouping.seed = t.seed;
    let model = ModelConfig {
        kind,
        gridsize,
        n: case.sim.size_px,
        ..ModelConfig::default()
    };
    let name = match kind {
        ModelKind::Supervised => "supervised".to_string(),
        ModelKind::Pinn => format!("pinn_gs{gridsize}"),
    };
    let spec = JobSpec {
        train_data: net_dir.join("data").join("train.npz"),
        test_data: None,
        model,
        train,
        device: suite.device.clone(),
        out_dir: net_dir.join(&name),
        resume: false,
        init_bundle: None,
    };
    let resolved = JobSpec {
        train: spec.train.resolved_for(&spec.model),
        ..spec.clone()
    };
    let want = serde_json::to_value(&resolved).expect("spec serialises");
    let done = || -> Option<PathBuf> {
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(spec.out_dir.join(CONFIG_FILE)).ok()?).ok()?;
        let result: JobResult = serde_json::from_slice(&std::fs::read(spec.out_dir.join(RESULT_FILE)).ok()?).ok()?;
        let path = spec.out_dir.join(result.bundle_path.as_ref()?);
        (config == want && result.error.is_none() && path.exists()).then_some(path)
    };
    if !opts.force
        && let Some(path) = done()
    {
        return Ok((path, 0.0));
    }
    let result = train_job(&spec, observer)?;
    match (&result.error, &result.bundle_path) {
        (None, Some(p)) => Ok((spec.out_dir.join(p), result.seconds)),
        _ => Err(Error::value(
            format!("training {name}"),
            result
                .error
                .or(result.bundle_error)
                .unwrap_or_else(|| "no bundle".into()),
        )),
    }
}

/// ePIE on every setting of the oracle grid; the one whose snapshot scores
/// best against the truth (mean of amplitude and phase SSIM, scored as the
/// case scores) is kept.
fn oracle(data: &CaseData, align: &crate::metrics::AlignConfig, device: String) -> Result<ArmRecon> {
    let started = Instant::now();
    let mut best: Option<(f64, Array2<Complex32>, String)> = None;
    let last = *ORACLE_ITERATIONS.iter().max().expect("non-empty");
    for (alpha, w) in ORACLE_SETTINGS {
        let mut cfg = IterativeConfig {
            iterations: Some(last),
            max_weight: Some(w),
            device: device.clone(),
            ..IterativeConfig::epie()
        };
        cfg.epie.alpha = Some(alpha);
        let out = reconstruct_iterative_snapshots(&data.test, &cfg, None, &ORACLE_ITERATIONS, &mut |_| {})?;
        for (it, object) in out.snapshots {
            let c = compare_all(&data.test, &[("oracle".into(), object.clone())], align, &[true])?.remove(0);
            let score = 0.5 * (c.amplitude.ssim + c.phase.ssim);
            if best.as_ref().is_none_or(|b| score > b.0) {
                best = Some((score, object, format!("alpha {alpha}, max_weight {w}, {it} iterations")));
            }
        }
    }
    let (_, object, detail) = best.expect("the grid is not empty");
    Ok(ArmRecon {
        object,
        source: "iterative epie".into(),
        seconds_train: 0.0,
        seconds_reconstruct: started.elapsed().as_secs_f64(),
        detail,
    })
}
