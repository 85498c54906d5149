//! Running a study: prepare the folder, run each stage's jobs (in this
//! process, or in parallel child processes `ptycho study run-job`), skip
//! what is up to date, record every job, gather the manifests, report.
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use super::config::StudyConfig;
use super::lock::StudyLock;
use super::manifest::{
    JobRecordV1, JobStatus, file_record, freshness, now_rfc3339, read_record, write_record, write_stage_manifest,
};
use super::plan::{Job, JobFilter, JobKind, Stage, plan};
use super::stages::{JobLog, config_digest, execute, inputs};
use crate::data::atomic::write_bytes_atomic;
use crate::error::{Error, Result};

/// The resolved configuration in a study folder.
pub const CONFIG_FILE: &str = "study.toml";

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Jobs at once (child processes; needs `executable`). 0 or 1: one at a time, in this process.
    pub parallel_jobs: usize,
    /// The `ptycho` binary that child processes run (`std::env::current_exe()` in the CLI).
    pub executable: Option<PathBuf>,
    pub only: JobFilter,
    /// Say what would run; write nothing.
    pub dry_run: bool,
    /// Run every selected job, up to date or not.
    pub force: bool,
}

/// What happened to one job in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its outputs exist with the recorded checksums.
    UpToDate,
    Completed,
    Failed,
    /// An input was missing.
    Skipped,
    /// `--dry-run`: it would run.
    WouldRun,
}

/// The result of [`run_study`].
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// `(job id, outcome, detail)` for every selected job, in plan order.
    pub jobs: Vec<(String, Outcome, String)>,
    pub report: Option<PathBuf>,
}

impl RunSummary {
    pub fn count(&self, o: Outcome) -> usize {
        self.jobs.iter().filter(|j| j.1 == o).count()
    }

    /// Jobs that failed or were skipped.
    pub fn problems(&self) -> Vec<&(String, Outcome, String)> {
        self.jobs
            .iter()
            .filter(|j| matches!(j.1, Outcome::Failed | Outcome::Skipped))
            .collect()
    }

    /// One line: `12 completed, 30 up to date, 1 failed, 2 skipped`.
    pub fn line(&self) -> String {
        let mut parts = vec![
            format!("{} completed", self.count(Outcome::Completed)),
            format!("{} skipped: up to date", self.count(Outcome::UpToDate)),
            format!("{} failed", self.count(Outcome::Failed)),
            format!("{} skipped: missing inputs", self.count(Outcome::Skipped)),
        ];
        if self.count(Outcome::WouldRun) > 0 {
            parts.push(format!("{} would run", self.count(Outcome::WouldRun)));
        }
        parts.join(", ")
    }
}

/// Reads the resolved configuration of a study folder.
pub fn load_study(dir: &Path) -> Result<StudyConfig> {
    let path = dir.join(CONFIG_FILE);
    if !path.exists() {
        return Err(Error::format(
            dir,
            format!("not a study folder (no {CONFIG_FILE}); start one with `ptycho study run --config FILE --out DIR`"),
        ));
    }
    StudyConfig::from_file(&path)
}

/// Creates the folder and writes the resolved configuration. A folder that
/// held another configuration keeps its files: each job compares its
/// configuration digest and reruns where the new one differs.
pub fn prepare_study(cfg: &StudyConfig, dir: &Path) -> Result<()> {
    cfg.validate()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_bytes_atomic(&dir.join(CONFIG_FILE), cfg.to_toml()?.as_bytes())
}

/// Runs (or resumes) a study in `dir` with `cfg`, then writes the
/// manifests and the report. Job failures are recorded, not returned:
/// check [`RunSummary::problems`]. Errors: an invalid configuration, a
/// folder locked by another run, a file the runner itself cannot write.
pub fn run_study(
    cfg: &StudyConfig,
    dir: &Path,
    opts: &RunOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<RunSummary> {
    cfg.validate()?;
    let jobs = plan(cfg);
    let selected: Vec<&Job> = jobs.iter().filter(|j| opts.only.matches(j)).collect();
    let mut summary = RunSummary::default();
    if opts.dry_run {
        for j in selected {
            let (o, why) = if opts.force {
                (Outcome::WouldRun, "forced".to_string())
            } else {
                match freshness(dir, j, &config_digest(cfg, j)) {
                    Ok(_) => (Outcome::UpToDate, String::new()),
                    Err(why) => (Outcome::WouldRun, why),
                }
            };
            progress(&format!("[{:>3}] {:<48} {}", j.index, j.id(), describe(o, &why)));
            summary.jobs.push((j.id(), o, why));
        }
        return Ok(summary);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let _lock = StudyLock::acquire(dir)?;
    prepare_study(cfg, dir)?;
    let threads = threads_per_job(opts.parallel_jobs);
    for stage in Stage::ALL {
        let stage_jobs: Vec<&Job> = selected.iter().copied().filter(|j| j.stage() == stage).collect();
        let mut to_run = Vec::new();
        for j in stage_jobs {
            match (opts.force, freshness(dir, j, &config_digest(cfg, j))) {
                (false, Ok(_)) => {
                    progress(&format!("[{:>3}] {:<48} skipped: up to date", j.index, j.id()));
                    summary.jobs.push((j.id(), Outcome::UpToDate, String::new()));
                }
                (_, fresh) => to_run.push((j, fresh.err().unwrap_or_else(|| "forced".into()))),
            }
        }
        let results: Mutex<Vec<(usize, String, Outcome, String)>> = Mutex::new(Vec::new());
        let report_one = |j: &Job, r: &JobRecordV1, secs: f64| {
            let (o, detail) = outcome_of(r);
            (j.index, format!("{} ({secs:.1} s)", describe(o, &detail)), o, detail)
        };
        match (&opts.executable, opts.parallel_jobs) {
            (Some(exe), n) if n > 1 && to_run.len() > 1 => {
                let queue = Mutex::new(to_run.iter());
                let gpus = tch::Cuda::device_count().max(0) as usize;
                let (tx, rx) = std::sync::mpsc::channel::<String>();
                std::thread::scope(|s| {
                    for slot in 0..n.min(to_run.len()) {
                        let (queue, results, tx) = (&queue, &results, tx.clone());
                        let device = (gpus > 1).then(|| format!("cuda:{}", slot % gpus));
                        s.spawn(move || {
                            loop {
                                let next = queue.lock().map(|mut q| q.next().map(|x| x.0));
                                let Ok(Some(j)) = next else { break };
                                let t = Instant::now();
                                let r = run_child(exe, dir, j, device.as_deref(), threads);
                                let line = report_one(j, &r, t.elapsed().as_secs_f64());
                                let _ = tx.send(format!("[{:>3}] {:<48} {}", j.index, j.id(), line.1));
                                if let Ok(mut v) = results.lock() {
                                    v.push(line);
                                }
                            }
                        });
                    }
                    drop(tx);
                    for line in rx {
                        progress(&line);
                    }
                });
            }
            _ => {
                for (j, why) in &to_run {
                    progress(&format!("[{:>3}] {:<48} running ({why})", j.index, j.id()));
                    let t = Instant::now();
                    let r = run_job_in(dir, cfg, &jobs, j, None, "local")?;
                    let line = report_one(j, &r, t.elapsed().as_secs_f64());
                    progress(&format!("[{:>3}] {:<48} {}", j.index, j.id(), line.1));
                    if let Ok(mut v) = results.lock() {
                        v.push(line);
                    }
                }
            }
        }
        let mut done = results.into_inner().unwrap_or_default();
        done.sort_by_key(|r| r.0);
        for (index, _, o, detail) in done {
            summary.jobs.push((jobs[index].id(), o, detail));
        }
        let all: Vec<&Job> = jobs.iter().filter(|j| j.stage() == stage).collect();
        write_stage_manifest(dir, &cfg.name, stage, &all)?;
    }
    summary
        .jobs
        .sort_by_key(|(id, ..)| jobs.iter().position(|j| &j.id() == id));
    summary.report = Some(super::report::write_report(dir, cfg)?);
    progress(&format!("study {}: {}", dir.display(), summary.line()));
    Ok(summary)
}

fn describe(o: Outcome, detail: &str) -> String {
    match o {
        Outcome::UpToDate => "skipped: up to date".into(),
        Outcome::Completed => "completed".into(),
        Outcome::Failed => format!("FAILED: {detail}"),
        Outcome::Skipped => format!("skipped: {detail}"),
        Outcome::WouldRun => format!("would run ({detail})"),
    }
}

fn outcome_of(r: &JobRecordV1) -> (Outcome, String) {
    match r.status {
        JobStatus::Completed => (Outcome::Completed, String::new()),
        JobStatus::Failed => (Outcome::Failed, r.error.clone().unwrap_or_default()),
        JobStatus::Skipped => (Outcome::Skipped, r.skip_reason.clone().unwrap_or_default()),
    }
}

/// libtorch threads for each of `parallel` jobs on this machine's cores.
fn threads_per_job(parallel: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / parallel.max(1)).max(1)
}

/// Runs one job in a child process (`exe study run-job DIR --index i --force`),
/// its output appended to the job's log; a child that dies without a record
/// gets a failed one.
fn run_child(exe: &Path, dir: &Path, job: &Job, device: Option<&str>, threads: usize) -> JobRecordV1 {
    let log_path = dir.join(job.log_path());
    if let Some(p) = log_path.parent() {
        let _ = std::fs::create_dir_all(p);
    }
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path);
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("study")
        .arg("run-job")
        .arg(dir)
        .arg("--index")
        .arg(job.index.to_string())
        .arg("--force")
        .arg("--threads")
        .arg(threads.to_string())
        .stdin(std::process::Stdio::null());
    if let Some(d) = device {
        cmd.arg("--device").arg(d);
    }
    if let Ok(f) = &log {
        if let Ok(g) = f.try_clone() {
            cmd.stdout(g);
        }
        if let Ok(g) = f.try_clone() {
            cmd.stderr(g);
        }
    }
    let stamp = |r: &JobRecordV1| (r.finished.clone(), r.seconds.to_bits());
    let before = read_record(dir, job).map(|r| stamp(&r));
    let status = cmd.status();
    match read_record(dir, job) {
        Some(r) if Some(stamp(&r)) != before => r,
        _ => {
            let mut r = JobRecordV1::new(job, String::new());
            r.error = Some(match status {
                Ok(s) => format!(
                    "the job process exited with {s} without a record (see {})",
                    log_path.display()
                ),
                Err(e) => format!("cannot start {}: {e}", exe.display()),
            });
            r.finished = now_rfc3339();
            r.runner = "child".into();
            let _ = write_record(dir, &r, job);
            r
        }
    }
}

/// Runs job `index` of the study in `dir` (what `ptycho study run-job` and
/// Slurm array tasks call). Without `force` an up-to-date job is left as is.
/// `device` overrides the study's device.
pub fn run_job(dir: &Path, index: usize, device: Option<&str>, force: bool) -> Result<JobRecordV1> {
    let cfg = load_study(dir)?;
    let jobs = plan(&cfg);
    let job = jobs.get(index).ok_or_else(|| {
        Error::config(
            "index",
            format!("the study has jobs 0..{}, not {index}", jobs.len().saturating_sub(1)),
        )
    })?;
    if !force && let Ok(r) = freshness(dir, job, &config_digest(&cfg, job)) {
        return Ok(r);
    }
    let runner = match (
        std::env::var("SLURM_ARRAY_JOB_ID"),
        std::env::var("SLURM_ARRAY_TASK_ID"),
    ) {
        (Ok(a), Ok(t)) => format!("slurm {a}_{t}"),
        _ => "child".into(),
    };
    run_job_in(dir, &cfg, &jobs, job, device, &runner)
}

/// Checks inputs, runs, records. Only a failure to write the record is an `Err`.
fn run_job_in(
    dir: &Path,
    cfg: &StudyConfig,
    jobs: &[Job],
    job: &Job,
    device: Option<&str>,
    runner: &str,
) -> Result<JobRecordV1> {
    let started = Instant::now();
    let digest = config_digest(cfg, job);
    let previous = read_record(dir, job);
    let mut record = JobRecordV1::new(job, digest);
    record.runner = runner.into();
    let mut log = JobLog::open(&dir.join(job.log_path()));
    log.line(&format!("== {} ({}) {}", job.id(), runner, now_rfc3339()));
    let mut available = Vec::new();
    let mut missing = Vec::new();
    for input in inputs(jobs, job) {
        let upstream_ok = read_record(dir, input.from).is_some_and(|r| r.status == JobStatus::Completed);
        if upstream_ok && dir.join(&input.path).is_file() {
            available.push(input);
        } else {
            let why = match read_record(dir, input.from) {
                Some(r) if r.status == JobStatus::Failed => {
                    format!("{} failed: {}", r.id, r.error.unwrap_or_default())
                }
                Some(r) if r.status == JobStatus::Skipped => format!("{} was skipped", r.id),
                Some(r) => format!("{} is missing its output", r.id),
                None => format!("{} has not run", input.from.id()),
            };
            missing.push((input, why));
        }
    }
    let required_missing: Vec<&(super::stages::Input, String)> = missing.iter().filter(|m| !m.0.optional).collect();
    let no_recon = job.kind == JobKind::Compare && !available.iter().any(|i| i.optional);
    record.missing_inputs = missing
        .iter()
        .map(|(i, _)| i.path.to_string_lossy().into_owned())
        .collect();
    if !required_missing.is_empty() || no_recon {
        let reasons: Vec<String> = missing
            .iter()
            .filter(|m| !m.0.optional || no_recon)
            .map(|(i, why)| format!("{} ({why})", i.path.display()))
            .collect();
        record.status = JobStatus::Skipped;
        record.skip_reason = Some(format!("missing input: {}", reasons.join("; ")));
    } else {
        for i in &available {
            match file_record(dir, &i.path) {
                Ok(f) => record.inputs.push(f),
                Err(e) => record.error = Some(e.to_string()),
            }
        }
        if job.kind == JobKind::Train && previous.is_some() {
            // a finished or failed earlier run: start afresh, not from its checkpoint
            let _ = std::fs::remove_dir_all(dir.join(job.out_dir()));
        }
        let device = device.unwrap_or(&cfg.device).to_string();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            execute(dir, cfg, job, &device, &available, &mut record, &mut log)
        }));
        let result = match result {
            Ok(r) => r,
            Err(p) => Err(Error::value(
                "job",
                format!(
                    "internal error: {}",
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                ),
            )),
        };
        match result.and_then(|files| files.iter().map(|f| file_record(dir, f)).collect::<Result<Vec<_>>>()) {
            Ok(outputs) if record.error.is_none() => {
                record.outputs = outputs;
                record.status = JobStatus::Completed;
            }
            Ok(_) => record.status = JobStatus::Failed,
            Err(e) => {
                record.status = JobStatus::Failed;
                record.error = Some(e.to_string());
            }
        }
    }
    record.seconds = started.elapsed().as_secs_f64();
    record.finished = now_rfc3339();
    match record.status {
        JobStatus::Completed => log.line(&format!("completed in {:.1} s", record.seconds)),
        JobStatus::Failed => log.line(&format!("FAILED: {}", record.error.clone().unwrap_or_default())),
        JobStatus::Skipped => log.line(&format!("skipped: {}", record.skip_reason.clone().unwrap_or_default())),
    }
    write_record(dir, &record, job)?;
    Ok(record)
}

/// The state of one job on disk.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobState {
    pub index: usize,
    pub id: String,
    pub stage: Stage,
    /// `up to date`, `completed (stale: …)`, `failed`, `skipped`, `pending`.
    pub state: String,
    pub detail: Option<String>,
}

/// The state of every job of the study in `dir` (reads and checks files,
/// writes nothing).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StudyStatus {
    pub study: String,
    pub dir: PathBuf,
    pub n_jobs: usize,
    pub n_up_to_date: usize,
    pub n_failed: usize,
    pub n_skipped: usize,
    pub n_pending: usize,
    pub n_stale: usize,
    pub locked_by: Option<String>,
    pub jobs: Vec<JobState>,
}

/// Reads the study in `dir` and checks every job against its record.
pub fn study_status(dir: &Path) -> Result<StudyStatus> {
    let cfg = load_study(dir)?;
    let jobs = plan(&cfg);
    let mut states = Vec::new();
    for j in &jobs {
        let (state, detail) = match (read_record(dir, j), freshness(dir, j, &config_digest(&cfg, j))) {
            (_, Ok(_)) => ("up to date", None),
            (None, Err(_)) => ("pending", None),
            (Some(r), Err(why)) => match r.status {
                JobStatus::Failed => ("failed", r.error),
                JobStatus::Skipped => ("skipped", r.skip_reason),
                JobStatus::Completed => ("stale", Some(why)),
            },
        };
        states.push(JobState {
            index: j.index,
            id: j.id(),
            stage: j.stage(),
            state: state.into(),
            detail,
        });
    }
    let n = |s: &str| states.iter().filter(|j| j.state == s).count();
    let lock = dir.join(super::lock::LOCK_FILE);
    Ok(StudyStatus {
        study: cfg.name.clone(),
        dir: dir.to_path_buf(),
        n_jobs: jobs.len(),
        n_up_to_date: n("up to date"),
        n_failed: n("failed"),
        n_skipped: n("skipped"),
        n_pending: n("pending"),
        n_stale: n("stale"),
        locked_by: std::fs::read_to_string(&lock)
            .ok()
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" ")),
        jobs: states,
    })
}

/// Gathers every stage manifest and writes the report (`study report`, the
/// last Slurm job). Takes the folder's lock.
pub fn report_study(dir: &Path) -> Result<PathBuf> {
    let cfg = load_study(dir)?;
    let _lock = StudyLock::acquire(dir)?;
    let jobs = plan(&cfg);
    for stage in Stage::ALL {
        let all: Vec<&Job> = jobs.iter().filter(|j| j.stage() == stage).collect();
        write_stage_manifest(dir, &cfg.name, stage, &all)?;
    }
    super::report::write_report(dir, &cfg)
}
