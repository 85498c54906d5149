//! The library's one error type. `Display` is self-contained: a notebook user
//! who prints only the message learns what went wrong, where, and (for shapes)
//! what was expected.
use std::path::PathBuf;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An array does not have the shape the operation needs.
    #[error("{what}: expected shape {expected}, got {got}")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },
    /// A value is out of its allowed range (NaN, negative amplitude, ...).
    #[error("{what}: {reason}")]
    Value { what: String, reason: String },
    /// A configuration field is invalid.
    #[error("invalid configuration `{field}`: {reason}")]
    Config { field: String, reason: String },
    /// The operating system refused a file operation. (The cause is part of
    /// the message, not a `source`, so a printed chain names it once.)
    #[error("{}: {cause}", path.display())]
    Io { path: PathBuf, cause: std::io::Error },
    /// A file exists but its content is not what the format requires.
    #[error("{}: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Torch(tch::TchError),
    /// An error from libhdf5.
    #[error("{}: HDF5: {cause}", path.display())]
    Hdf5 { path: PathBuf, cause: hdf5::Error },
    /// An external program (e.g. a benchmark reference script) failed.
    #[error("{program}: {reason}")]
    External { program: String, reason: String },
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        Error::Torch(e)
    }
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn value(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Value {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn shape(what: impl Into<String>, expected: impl Into<String>, got: impl Into<String>) -> Self {
        Error::Shape {
            what: what.into(),
            expected: expected.into(),
            got: got.into(),
        }
    }

    pub(crate) fn hdf5(path: impl Into<PathBuf>, cause: hdf5::Error) -> Self {
        Error::Hdf5 {
            path: path.into(),
            cause,
        }
    }
}
