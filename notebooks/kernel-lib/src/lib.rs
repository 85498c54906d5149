//! ptycho_workbench, whole, as one shared library for the notebook kernel
//! (see Cargo.toml). Nothing of its own.
pub use ptycho_workbench::*;
