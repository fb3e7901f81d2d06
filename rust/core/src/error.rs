//! One error type for the core, with a kind that the bindings and the daemon map to
//! exceptions, HTTP status codes and exit codes. The kind is decided where the error
//! happens; nobody downstream matches on message text.

use std::io;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in the categories every layer above understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// An operating-system error (carries an `io::Error`).
    Io,
    /// The caller passed something malformed.
    InvalidArgument,
    /// Content did not match the digest it was named by.
    DigestMismatch,
    /// The thing asked for does not exist (outside plain I/O).
    NotFound,
    /// The operation conflicts with current state.
    Conflict,
    /// The operation was interrupted (Ctrl-C, cancellation).
    Interrupted,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Io,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::DigestMismatch { .. } => ErrorKind::DigestMismatch,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Interrupted => ErrorKind::Interrupted,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

/// Adds the path to an `io::Result`, so every I/O error says what it was about.
pub trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
