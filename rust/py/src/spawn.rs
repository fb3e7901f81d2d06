//! Binding for starting a container's monitor without holding the GIL.

use std::ffi::OsString;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use skiff_core::spawn;

use crate::gil::detached;

/// Starts `argv` in a process group of its own, from `/`, with stdin on /dev/null,
/// stdout on a duplicate of `stdout_fd` (the caller keeps its own) and stderr
/// appended to `stderr_path`; returns its pid (the caller reaps it). The spawn
/// (a vfork-style clone and exec) runs without the GIL.
#[pyfunction]
fn spawn_detached(
    py: Python<'_>,
    argv: Vec<OsString>,
    stdout_fd: i32,
    stderr_path: PathBuf,
) -> PyResult<u32> {
    if stdout_fd < 0 {
        return Err(PyOSError::new_err("spawn_detached: a negative stdout_fd"));
    }
    // SAFETY: the caller keeps `stdout_fd` open for this call; we take a
    // close-on-exec duplicate of our own.
    let stdout = unsafe { BorrowedFd::borrow_raw(stdout_fd) }
        .try_clone_to_owned()
        .map_err(|e| PyOSError::new_err(e.to_string()))?;
    detached(py, move || {
        spawn::spawn_detached(&argv, stdout, &stderr_path)
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(spawn_detached, m)?)?;
    Ok(())
}
