//! Model bundles `wts.h5.zip` (DESIGN §4): save, load, inspect.
pub mod keras;
pub mod load;
pub mod manifest;
pub mod ptychopinn;
pub mod ptychopinn_export;
pub mod save;

pub use load::Bundle;
pub use manifest::{BUNDLE_FILE, BundleManifestV1};
pub use save::{BundleInputs, BundleParts, save_bundle, write_bundle};
