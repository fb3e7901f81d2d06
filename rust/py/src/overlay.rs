//! Bindings for overlay mounts, the trees they leave, and network namespaces.

use std::path::PathBuf;

use pyo3::prelude::*;
use std::os::fd::IntoRawFd;

use skiff_core::{netns, overlay, tree};

use crate::gil::detached;

/// Mounts an overlay at `target`: `lowers` top first; `upper`/`work` both or neither.
#[pyfunction]
#[pyo3(signature = (lowers, target, *, upper = None, work = None, options = Vec::new()))]
fn mount_overlay(
    py: Python<'_>,
    lowers: Vec<PathBuf>,
    target: PathBuf,
    upper: Option<PathBuf>,
    work: Option<PathBuf>,
    options: Vec<String>,
) -> PyResult<()> {
    detached(py, move || {
        overlay::mount_overlay(
            &lowers,
            upper.as_deref(),
            work.as_deref(),
            &target,
            &options,
        )
    })
}

/// Bind-mounts `source` on `target` (recursively), read-only when asked.
#[pyfunction]
#[pyo3(signature = (source, target, *, readonly = false))]
fn bind_mount(py: Python<'_>, source: PathBuf, target: PathBuf, readonly: bool) -> PyResult<()> {
    detached(py, move || overlay::bind_mount(&source, &target, readonly))
}

/// Unmounts `target` (lazily with `detach=True`); not mounted is fine.
#[pyfunction]
#[pyo3(signature = (target, *, detach = false))]
fn unmount(py: Python<'_>, target: PathBuf, detach: bool) -> PyResult<()> {
    detached(py, move || overlay::unmount(&target, detach))
}

/// Removes `path` and everything under it, never following symbolic links; a path
/// already gone is fine. Runs without the GIL (a big writable layer takes a while).
#[pyfunction]
fn remove_tree(py: Python<'_>, path: PathBuf) -> PyResult<()> {
    detached(py, move || tree::remove_tree(&path))
}

/// A new network namespace with its loopback up, as a close-on-exec descriptor
/// (the caller's to close); see skiff-core's netns.rs.
#[pyfunction]
fn new_netns(py: Python<'_>) -> PyResult<i32> {
    detached(py, || netns::new_netns().map(IntoRawFd::into_raw_fd))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(new_netns, m)?)?;
    m.add_function(wrap_pyfunction!(mount_overlay, m)?)?;
    m.add_function(wrap_pyfunction!(remove_tree, m)?)?;
    m.add_function(wrap_pyfunction!(unmount, m)?)?;
    m.add_function(wrap_pyfunction!(bind_mount, m)?)?;
    Ok(())
}
