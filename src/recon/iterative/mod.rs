//! Iterative reference solvers on `tch` tensors (CPU or GPU): batched ePIE /
//! rPIE and a gradient solver (least-squares steps or Adam, amplitude or
//! Poisson loss), for the object and optionally the probe.
//!
//! ```no_run
//! use ptycho_workbench::prelude::*;
//! use ptycho_workbench::recon::iterative::{IterativeConfig, reconstruct_iterative};
//!
//! # fn main() -> ptycho_workbench::Result<()> {
//! let ds = simulate(&SimConfig { dose_photons: None, ..SimConfig::default() })?;
//! let cfg = IterativeConfig { iterations: Some(50), ..IterativeConfig::epie() };
//! let out = reconstruct_iterative(&ds, &cfg, &mut |r| println!("{} {:.3e}", r.iteration, r.data_error))?;
//! println!("{:?}", out.reconstruction.metadata.solver.map(|s| s.stop_reason));
//! # Ok(())
//! # }
//! ```
pub mod auto;
mod batch;
mod compare;
mod config;
mod epie;
mod gradient;
mod grid;
pub mod modes;
pub mod positions;
mod search;
mod solve;

pub use auto::{DataStats, SolverSettings};
pub use compare::object_error;
pub use config::{Algorithm, EpieConfig, GradientConfig, IterativeConfig, Loss, MaskConfig, Optimizer};
pub use positions::PositionConfig;
pub(crate) use solve::start_object;
pub use solve::{
    InitSummary, IterationRecord, IterativeInit, IterativeOutcome, Misfit, PositionErrors, PositionSummary,
    SolverSummary, StopReason, data_error, pattern_misfit, reconstruct_iterative, reconstruct_iterative_from,
    reconstruct_iterative_snapshots, rms_distance,
};
