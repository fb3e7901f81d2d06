//! The runtime's error type. Each variant says what failed and why, in words a
//! caller (containerd, podman, skiffd) can show as is: they print the last log line.

use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: io::Error,
    },
    /// config.json (or a --process file, or --resources) asks for something invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// No container by that id.
    #[error("container {0:?} does not exist")]
    NotFound(String),
    /// The container is in the wrong state for the operation.
    #[error("{0}")]
    State(String),
    /// The container's init reported a failure during setup.
    #[error("container init: {0}")]
    Init(String),
    /// A hook failed or timed out.
    #[error("hook {path}: {reason}")]
    Hook { path: String, reason: String },
}

impl Error {
    pub fn sys(context: impl Into<String>, source: io::Error) -> Self {
        Error::Sys {
            context: context.into(),
            source,
        }
    }

    /// The category callers map to their own errors (skiffd: exceptions, HTTP
    /// status): logged as the `kind` of the JSON error line.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not-found",
            Error::State(_) => "conflict",
            Error::Config(_) | Error::Usage(_) => "invalid",
            Error::Sys { .. } | Error::Init(_) | Error::Hook { .. } => "system",
        }
    }

    /// The error of the last failed system call, with context.
    pub fn last(context: impl Into<String>) -> Self {
        Self::sys(context, io::Error::last_os_error())
    }
}

/// Adds context to `io::Result`s.
pub trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(context(), e))
    }
}

/// Checks a libc return value: -1 becomes the errno with context.
pub fn check(ret: libc::c_int, context: impl FnOnce() -> String) -> Result<libc::c_int> {
    if ret == -1 {
        Err(Error::last(context()))
    } else {
        Ok(ret)
    }
}
