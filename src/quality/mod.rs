//! The quality suite (`ptycho bench quality`, `make quality`): every arm
//! (networks, tuned solvers, the hybrid, a constant) on cases that span
//! objects, doses, overlap, gridsize and generalisation, scored against the
//! truth as `ptycho compare` scores; the table lands in `benches/results/`
//! and is summarised in docs/quality.md.
mod config;
mod report;
mod run;

pub use config::{Arm, CaseTraining, DEFAULT_SUITE_TOML, QUICK_SUITE_TOML, QualityCase, QualitySuite};
pub use report::{QualityReport, markdown_table, write_results};
pub use run::{ArmResult, ORACLE_ITERATIONS, ORACLE_SETTINGS, RunOptions, run_suite};
