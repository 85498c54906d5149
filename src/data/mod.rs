//! Datasets and the files that hold them: PtychoPINN NPZ, Ptychodus HDF5
//! products, CXI beamline files, tike scans (import). Every write is atomic
//! (temp file + rename).
pub mod archive;
pub mod atomic;
pub mod cxi;
pub mod dataset;
pub mod defects;
pub(crate) mod h5util;
pub mod image;
pub mod inspect;
pub mod npy;
pub mod npz;
pub mod product;
pub mod tike;

pub use cxi::read_cxi;
pub use dataset::{Dataset, DatasetSummary, Geometry, MAX_CANVAS_PX, Metadata, SUPPORTED_N, SplitAxis};
pub use npz::{read_npz, write_npz};
pub use product::{Product, read_product, write_product};
pub use tike::{RawTike, import_tike, read_raw_tike};

use std::path::Path;

use crate::error::{Error, Result};

/// Reads a dataset, choosing the reader by extension: `.npz` (PtychoPINN) or
/// `.cxi`/`.h5`/`.hdf5` (CXI).
pub fn read_dataset(path: &Path) -> Result<Dataset> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("npz") => read_npz(path),
        Some("cxi" | "h5" | "hdf5") => read_cxi(path),
        _ => Err(Error::format(path, "unknown dataset type (expected .npz or .cxi)")),
    }
}
