//! The dose × overlap study (ptychopinn.md §7): simulate each dose, select
//! overlap views, train every model, reconstruct (bundles and the iterative
//! reference), compare with the truth, report. Each step is a job with a
//! record; a rerun skips what is up to date; jobs run here, in parallel
//! child processes, or as Slurm array tasks. Layout and rules: `docs/study.md`.
pub mod config;
pub mod lock;
pub mod manifest;
pub mod plan;
pub mod report;
pub mod runner;
pub mod slurm;
pub mod stages;
pub mod views;

pub use config::{StudyConfig, ViewConfig};
pub use lock::StudyLock;
pub use manifest::{JobRecordV1, JobStatus, StageManifestV1};
pub use plan::{Job, JobFilter, JobKind, Stage, plan};
pub use report::write_report;
pub use runner::{
    CONFIG_FILE, Outcome, RunOptions, RunSummary, StudyStatus, load_study, prepare_study, report_study, run_job,
    run_study, study_status,
};
pub use slurm::{SlurmScripts, write_slurm};
