//! # ptycho-workbench
//!
//! Physics-informed neural networks for ptychography, as a library, a CLI
//! (`ptycho`) and notebooks. This crate's foundation: the physics of far-field
//! ptychography on `tch` tensors (CPU or GPU), simulation of datasets with
//! Poisson noise at a photon dose, and the files other tools read
//! (PtychoPINN NPZ, Ptychodus HDF5 products, CXI).
//!
//! ```no_run
//! use ptycho_workbench::prelude::*;
//!
//! # fn main() -> ptycho_workbench::Result<()> {
//! let cfg = SimConfig { dose_photons: Some(1e5), ..SimConfig::default() };
//! let dataset = simulate(&cfg)?;
//! println!("{}", dataset.summary());
//! let (train, test) = dataset.split(SplitAxis::Y, 0.5)?;
//! write_npz(&train, "train.npz".as_ref())?;
//! # let _ = test;
//! # Ok(())
//! # }
//! ```
//!
//! See `ARCHITECTURE.md` for the module map and `docs/physics.md` for the
//! conventions.
pub mod array;
pub mod autocast;
pub mod bench;
pub mod bundle;
pub mod compare;
pub mod data;
pub mod demo;
pub mod error;
pub mod grouping;
pub mod job;
pub mod metrics;
pub mod model;
pub mod physics;
pub mod plot;
pub mod quality;
pub mod recon;
pub mod resolution;
pub mod runtime;
pub mod simulate;
pub mod study;
pub mod table;
pub mod train;

pub use error::{Error, Result};
// The crates whose types appear in our API, so a notebook needs one `:dep`.
pub use ndarray;
pub use num_complex;
pub use tch;

/// What a notebook imports with one `use`.
pub mod prelude {
    pub use crate::array::{default_device, parse_device};
    pub use crate::bundle::{Bundle, BundleInputs, save_bundle};
    pub use crate::compare::{RegisterPolicy, compare_all, default_align, write_comparison};
    pub use crate::data::{
        Dataset, DatasetSummary, Geometry, Metadata, Product, SplitAxis, read_cxi, read_dataset, read_npz,
        read_product, write_npz, write_product,
    };
    pub use crate::error::{Error, Result};
    pub use crate::metrics::{AlignConfig, Comparison, HalfSetConfig, compare_objects, metrics_table};
    pub use crate::model::{ModelConfig, ModelKind};
    pub use crate::plot::{self, Figure};
    pub use crate::recon::iterative::{IterativeConfig, reconstruct_iterative};
    pub use crate::recon::{ReconConfig, Reconstruction, interleaved_halves, write_recon_npz};
    pub use crate::resolution::frc_halves;
    pub use crate::simulate::{ObjectKind, ProbeKind, ScanKind, SimConfig, simulate, simulate_on};
    pub use crate::table::{Column, Table};
    pub use crate::train::{LineObserver, TrainConfig, Trainer};
}
