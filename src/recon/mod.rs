//! Reconstruction of full objects: bundle inference with stitching, and
//! iterative reference solvers (ePIE, gradient).
pub mod infer;
pub mod iterative;
pub mod phase_sync;
pub mod select;
pub mod stitch;

pub use infer::{
    AdaptConfig, AdaptSummary, ReconConfig, ReconMetadata, Reconstruction, StitchAt, on_dataset_grid, write_recon_npz,
    write_recon_npz_with_probe,
};
