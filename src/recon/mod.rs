//! Reconstruction of full objects: bundle inference with stitching,
//! iterative reference solvers (ePIE, gradient), and the interleaved halves
//! of a scan that the half-set FRC reconstructs separately.
pub mod halves;
pub mod infer;
pub mod iterative;
pub mod phase_sync;
pub mod select;
pub mod stitch;

pub use halves::interleaved_halves;
pub use infer::{
    AdaptConfig, AdaptSummary, ReconConfig, ReconMetadata, Reconstruction, StitchAt, on_dataset_grid, write_recon_npz,
    write_recon_npz_with, write_recon_npz_with_probe,
};
