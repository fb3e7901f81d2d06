//! The single mapping from `skiff_core::Error` to Python exceptions.
//!
//! Kinds map to the classes of `skiff.errors` (all rooted at `SkiffError`); I/O
//! errors become the matching built-in `OSError` subclass, with errno and filename
//! set, exactly as Python's own I/O would raise them.

use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use skiff_core::Error;

/// Imports `skiff.errors.<name>` once per interpreter and caches it.
macro_rules! skiff_error_type {
    ($py:expr, $name:literal) => {{
        static CELL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        CELL.import($py, "skiff.errors", $name)
    }};
}

fn raise(ty: PyResult<&Bound<'_, PyType>>, msg: String) -> PyErr {
    match ty {
        Ok(ty) => PyErr::from_type(ty.clone(), msg),
        // The package is broken if skiff.errors cannot be imported: say so.
        Err(import_error) => import_error,
    }
}

pub fn to_pyerr(py: Python<'_>, err: Error) -> PyErr {
    let msg = err.to_string();
    match err {
        Error::Io { path, source } => match source.raw_os_error() {
            // OSError(errno, strerror, filename) picks the subclass from errno.
            Some(errno) => {
                let strerror = std::io::Error::from_raw_os_error(errno).to_string();
                let strerror = strip_os_error_suffix(&strerror);
                PyOSError::new_err((errno, strerror, path.to_string_lossy().into_owned()))
            }
            None => PyErr::from(source),
        },
        Error::InvalidArgument(_) => raise(skiff_error_type!(py, "InvalidArgument"), msg),
        Error::DigestMismatch { .. } => raise(skiff_error_type!(py, "DigestMismatch"), msg),
        Error::NotFound(_) => raise(skiff_error_type!(py, "NotFound"), msg),
        Error::Conflict(_) => raise(skiff_error_type!(py, "Conflict"), msg),
        Error::Interrupted => PyKeyboardInterrupt::new_err(msg),
    }
}

/// `io::Error` renders as "No such file or directory (os error 2)"; Python wants the
/// bare strerror text.
fn strip_os_error_suffix(text: &str) -> String {
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text.to_string(),
    }
}
