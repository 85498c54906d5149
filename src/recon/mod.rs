//! Reconstruction of full objects: bundle inference with stitching, and
//! iterative reference solvers (ePIE, gradient).
pub mod infer;
pub mod iterative;
pub mod stitch;

pub use infer::{ReconConfig, ReconMetadata, Reconstruction, StitchAt, write_recon_npz};
