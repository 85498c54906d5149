//! Reconstruction of full objects: bundle inference with stitching.
pub mod infer;
pub mod stitch;

pub use infer::{ReconConfig, ReconMetadata, Reconstruction, write_recon_npz};
