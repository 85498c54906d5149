//! On-disk records of a study (docs/study.md): one `JobRecordV1` per job
//! (`records/<id>.json`, written atomically when the job ends, by whichever
//! process ran it) and the stage manifests gathered from them
//! (`run_manifest.json`, …, `comparison_manifest.json`). Paths in both are
//! relative to the study folder, where the manifests live.
//!
//! Resume rule: a job is up to date when its record says `completed`, its
//! configuration digest is unchanged, no input was missing, and every input
//! and output file still has the recorded sha256.
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::plan::{Job, JobKind, Split, Stage};
use super::views::{OverlapMetrics, ViewSelection};
use crate::data::atomic::write_bytes_atomic;
use crate::error::{Error, Result};
use crate::model::ModelKind;

pub const RECORD_FORMAT: &str = "ptycho-study-job";
pub const MANIFEST_FORMAT: &str = "ptycho-study-manifest";
pub const FORMAT_VERSION: u32 = 1;

/// A file a job read or wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    /// Relative to the study folder.
    pub path: String,
    pub sha256: String,
    pub size_bytes: u64,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Completed,
    Failed,
    /// Not run: an input was missing (`skip_reason` says which and why).
    Skipped,
}

/// What a training job reports (the `train_result.json` of `job::train_job`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingRecord {
    pub epochs_completed: usize,
    pub stop_reason: Option<String>,
    pub final_train_loss: Option<f64>,
    pub final_val_loss: Option<f64>,
    pub test_loss: Option<f64>,
    /// Groups per epoch after clamping to the view's positions.
    pub n_groups: Option<usize>,
    pub n_train_positions: usize,
    /// Relative to the manifest (the study folder); null when not saved.
    pub bundle_path: Option<String>,
    pub bundle_sha256: Option<String>,
    pub bundle_size_bytes: Option<u64>,
    pub bundle_error: Option<String>,
    pub history_path: Option<String>,
}

/// What a view job reports per split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewSplitRecord {
    pub split: Split,
    pub n_images_before_subsampling: usize,
    pub selection: ViewSelection,
    pub overlap: OverlapMetrics,
}

/// One metric row of a comparison (per reconstruction and component).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricRow {
    pub label: String,
    /// `pinn`, `supervised` or `iterative`.
    pub model: String,
    pub gridsize: Option<usize>,
    /// `amplitude` or `phase`.
    pub component: String,
    pub mae: f64,
    pub mse: f64,
    /// None when infinite (identical images).
    pub psnr: Option<f64>,
    pub ssim: f64,
    pub ms_ssim: f64,
    pub frc50: Option<f64>,
    pub frc_1_7: Option<f64>,
}

/// The record of one job (`records/<id>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRecordV1 {
    pub format: String,
    pub format_version: u32,
    pub id: String,
    pub index: usize,
    pub kind: JobKind,
    pub stage: Stage,
    pub dose_photons: f64,
    pub view: Option<String>,
    pub gridsize: Option<usize>,
    pub model: Option<ModelKind>,
    pub split: Option<Split>,
    pub status: JobStatus,
    pub error: Option<String>,
    pub skip_reason: Option<String>,
    /// Relative to the study folder.
    pub log_path: Option<String>,
    /// sha256 of the configuration this job depends on.
    pub config_sha256: String,
    pub inputs: Vec<FileRecord>,
    /// Inputs that were absent (a comparison runs with the others).
    pub missing_inputs: Vec<String>,
    pub outputs: Vec<FileRecord>,
    /// RFC 3339, UTC.
    pub finished: String,
    pub seconds: f64,
    /// Which process ran it (`local`, `child`, `slurm <job>_<task>`).
    pub runner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<ViewSplitRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricRow>,
}

impl JobRecordV1 {
    /// A record for `job` with nothing filled in yet.
    pub fn new(job: &Job, config_sha256: String) -> Self {
        JobRecordV1 {
            format: RECORD_FORMAT.into(),
            format_version: FORMAT_VERSION,
            id: job.id(),
            index: job.index,
            kind: job.kind,
            stage: job.stage(),
            dose_photons: job.dose_photons,
            view: job.view.clone(),
            gridsize: job.gridsize,
            model: job.model,
            split: job.split,
            status: JobStatus::Failed,
            error: None,
            skip_reason: None,
            log_path: Some(job.log_path().to_string_lossy().into_owned()),
            config_sha256,
            inputs: Vec::new(),
            missing_inputs: Vec::new(),
            outputs: Vec::new(),
            finished: String::new(),
            seconds: 0.0,
            runner: "local".into(),
            training: None,
            views: Vec::new(),
            metrics: Vec::new(),
        }
    }
}

/// A stage manifest: the records of its jobs, gathered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageManifestV1 {
    pub format: String,
    pub format_version: u32,
    pub study: String,
    pub stage: Stage,
    pub created: String,
    pub n_jobs: usize,
    pub n_completed: usize,
    pub n_failed: usize,
    pub n_skipped: usize,
    /// Jobs without a record (not run yet, or filtered out).
    pub pending: Vec<String>,
    pub jobs: Vec<JobRecordV1>,
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((h.finalize().iter().map(|b| format!("{b:02x}")).collect(), size))
}

/// The record of a file relative to `dir`.
pub fn file_record(dir: &Path, rel: &Path) -> Result<FileRecord> {
    let (sha256, size_bytes) = sha256_file(&dir.join(rel))?;
    Ok(FileRecord {
        path: rel.to_string_lossy().into_owned(),
        sha256,
        size_bytes,
    })
}

/// Reads a job's record; `None` when there is none or it is unreadable
/// (an unreadable record means the job runs again).
pub fn read_record(dir: &Path, job: &Job) -> Option<JobRecordV1> {
    let text = std::fs::read(dir.join(job.record_path())).ok()?;
    let r: JobRecordV1 = serde_json::from_slice(&text).ok()?;
    (r.format == RECORD_FORMAT && r.format_version == FORMAT_VERSION && r.id == job.id()).then_some(r)
}

/// Writes a job's record atomically.
pub fn write_record(dir: &Path, record: &JobRecordV1, job: &Job) -> Result<()> {
    let path = dir.join(job.record_path());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let json = serde_json::to_vec_pretty(record).map_err(|e| Error::value("job record", e.to_string()))?;
    write_bytes_atomic(&path, &json)
}

fn file_matches(dir: &Path, f: &FileRecord) -> std::result::Result<(), String> {
    let path = dir.join(&f.path);
    let meta = std::fs::metadata(&path).map_err(|_| format!("{} is missing", f.path))?;
    if meta.len() != f.size_bytes {
        return Err(format!("{} changed size", f.path));
    }
    match sha256_file(&path) {
        Ok((sha, _)) if sha == f.sha256 => Ok(()),
        Ok(_) => Err(format!("{} checksum mismatch", f.path)),
        Err(e) => Err(e.to_string()),
    }
}

/// `Ok(())` when `job` need not run again, else why it must.
pub fn freshness(dir: &Path, job: &Job, config_sha256: &str) -> std::result::Result<JobRecordV1, String> {
    let record = read_record(dir, job).ok_or_else(|| "no record".to_string())?;
    match record.status {
        JobStatus::Completed => {}
        JobStatus::Failed => return Err("the last run failed".into()),
        JobStatus::Skipped => return Err("the last run was skipped".into()),
    }
    if record.config_sha256 != config_sha256 {
        return Err("its configuration changed".into());
    }
    if !record.missing_inputs.is_empty() {
        return Err(format!("inputs were missing: {}", record.missing_inputs.join(", ")));
    }
    for f in &record.outputs {
        file_matches(dir, f).map_err(|e| format!("output {e}"))?;
    }
    for f in &record.inputs {
        file_matches(dir, f).map_err(|e| format!("input {e}"))?;
    }
    Ok(record)
}

/// Gathers the records of `jobs` (one stage) into its manifest and writes it.
pub fn write_stage_manifest(dir: &Path, study: &str, stage: Stage, jobs: &[&Job]) -> Result<StageManifestV1> {
    let mut records = Vec::new();
    let mut pending = Vec::new();
    for j in jobs {
        match read_record(dir, j) {
            Some(r) => records.push(r),
            None => pending.push(j.id()),
        }
    }
    let count = |s: JobStatus| records.iter().filter(|r| r.status == s).count();
    let m = StageManifestV1 {
        format: MANIFEST_FORMAT.into(),
        format_version: FORMAT_VERSION,
        study: study.into(),
        stage,
        created: now_rfc3339(),
        n_jobs: jobs.len(),
        n_completed: count(JobStatus::Completed),
        n_failed: count(JobStatus::Failed),
        n_skipped: count(JobStatus::Skipped),
        pending,
        jobs: records,
    };
    let json = serde_json::to_vec_pretty(&m).map_err(|e| Error::value("manifest", e.to_string()))?;
    write_bytes_atomic(&dir.join(stage.manifest_file()), &json)?;
    Ok(m)
}

/// Now, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    crate::bundle::manifest::utc_rfc3339(secs)
}
