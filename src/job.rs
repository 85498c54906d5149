//! One training job as a study runs it: read the data, train, save the
//! bundle, and always return a result record (a failed save is recorded,
//! not raised). Everything it writes is atomic.
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::array::parse_device;
use crate::bundle::{BundleInputs, save_bundle};
use crate::data::atomic::write_bytes_atomic;
use crate::data::read_dataset;
use crate::error::{Error, Result};
use crate::model::ModelConfig;
use crate::train::{StopReason, TrainConfig, TrainObserver, Trainer};

/// What to train, on what, into where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub train_data: PathBuf,
    pub test_data: Option<PathBuf>,
    pub model: ModelConfig,
    pub train: TrainConfig,
    /// `auto`, `cpu`, `cuda`, `cuda:N`.
    pub device: String,
    pub out_dir: PathBuf,
    /// Continue from `out_dir/checkpoint.safetensors` when present.
    pub resume: bool,
    /// Start from this bundle's weights (fine-tuning; its model
    /// configuration must be `model`). Absent from older specs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_bundle: Option<PathBuf>,
}

/// The record of a job (`train_result.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// `completed` (trained; the bundle may still have failed) or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub epochs_completed: usize,
    pub stop_reason: Option<StopReason>,
    pub final_train_loss: Option<f64>,
    pub final_val_loss: Option<f64>,
    /// PINNs: the share of saturated phases (`TrainOutcome::phase_saturation`).
    #[serde(default)]
    pub phase_saturation: Option<f64>,
    pub test_loss: Option<f64>,
    /// Why the held-out loss could not be computed (the bundle is still saved).
    pub test_error: Option<String>,
    /// Relative to `out_dir`.
    pub bundle_path: Option<String>,
    pub bundle_sha256: Option<String>,
    pub bundle_size_bytes: Option<u64>,
    pub bundle_error: Option<String>,
    pub seconds: f64,
}

/// File names inside `out_dir`.
pub const RESULT_FILE: &str = "train_result.json";
pub const CONFIG_FILE: &str = "config.json";
pub const HISTORY_FILE: &str = "history.csv";

/// Runs a job. Errors before training (bad data, bad config) and during
/// training give `status: failed`; a bundle that cannot be written gives
/// `bundle_path: None` with `bundle_error`. Only a failure to write the
/// result record itself is returned as `Err`.
pub fn train_job(spec: &JobSpec, observer: &mut dyn TrainObserver) -> Result<JobResult> {
    let started = Instant::now();
    std::fs::create_dir_all(&spec.out_dir).map_err(|e| Error::io(&spec.out_dir, e))?;
    // what a killed earlier run of this job was writing (a 20 MB bundle, say)
    crate::data::atomic::remove_stale_temps(&spec.out_dir);
    let mut result = JobResult {
        status: "failed".into(),
        error: None,
        epochs_completed: 0,
        stop_reason: None,
        final_train_loss: None,
        final_val_loss: None,
        phase_saturation: None,
        test_loss: None,
        test_error: None,
        bundle_path: None,
        bundle_sha256: None,
        bundle_size_bytes: None,
        bundle_error: None,
        seconds: 0.0,
    };
    if let Err(e) = run(spec, observer, &mut result) {
        result.error = Some(e.to_string());
    }
    result.seconds = started.elapsed().as_secs_f64();
    let json = serde_json::to_vec_pretty(&result).expect("result serialises");
    write_bytes_atomic(&spec.out_dir.join(RESULT_FILE), &json)?;
    Ok(result)
}

fn run(spec: &JobSpec, observer: &mut dyn TrainObserver, result: &mut JobResult) -> Result<()> {
    let resolved = JobSpec {
        train: spec.train.resolved_for(&spec.model),
        ..spec.clone()
    };
    let config = serde_json::to_vec_pretty(&resolved).expect("spec serialises");
    write_bytes_atomic(&spec.out_dir.join(CONFIG_FILE), &config)?;
    let device = parse_device(&spec.device)?;
    let ds = read_dataset(&spec.train_data)?;
    let mut trainer = Trainer::new(spec.model.clone(), spec.train.clone(), device);
    trainer.checkpoint_dir = Some(spec.out_dir.clone());
    trainer.resume = spec.resume;
    if let Some(b) = &spec.init_bundle {
        let bundle = crate::bundle::Bundle::load(b, tch::Device::Cpu)?;
        if bundle.config() != &spec.model {
            return Err(Error::config(
                "init_bundle",
                format!(
                    "{} holds a {:?} network (gridsize {}, filters ×{}), not the one configured here",
                    b.display(),
                    bundle.config().kind,
                    bundle.config().gridsize,
                    bundle.config().n_filters_scale
                ),
            ));
        }
        trainer.init = Some(std::rc::Rc::new(crate::train::InitWeights::from_bundle(&bundle)));
    }
    let outcome = trainer.fit(&ds, observer)?;
    result.status = "completed".into();
    result.epochs_completed = outcome.history.epochs.len();
    result.stop_reason = Some(outcome.stop);
    result.final_train_loss = outcome.history.last().map(|r| r.train_loss);
    result.final_val_loss = outcome.history.last().and_then(|r| r.val_loss);
    result.phase_saturation = outcome.phase_saturation;
    write_bytes_atomic(&spec.out_dir.join(HISTORY_FILE), outcome.history.to_csv().as_bytes())?;
    match save_bundle(
        &BundleInputs {
            outcome: &outcome,
            train_config: &spec.train,
            dataset: &ds,
        },
        &spec.out_dir,
    ) {
        Ok(path) => record_bundle(result, &path, &spec.out_dir)?,
        Err(e) => result.bundle_error = Some(e.to_string()),
    }
    // after the bundle is safe: a bad test set costs only its loss
    if let Some(test) = &spec.test_data {
        match read_dataset(test).and_then(|t| trainer.evaluate(&outcome.model, &t)) {
            Ok(loss) => result.test_loss = Some(loss),
            Err(e) => result.test_error = Some(e.to_string()),
        }
    }
    Ok(())
}

fn record_bundle(result: &mut JobResult, path: &Path, out_dir: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    result.bundle_sha256 = Some(crate::bundle::save::sha256_hex(&bytes));
    result.bundle_size_bytes = Some(bytes.len() as u64);
    result.bundle_path = Some(
        path.strip_prefix(out_dir)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned(),
    );
    Ok(())
}
