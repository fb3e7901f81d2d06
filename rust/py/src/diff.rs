//! Layer diff for Python: directory trees to OCI layer blobs, and `docker diff`.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use skiff_core::compress::Compression;
use skiff_core::diff::{self, DiffOptions, DiffStats};
use skiff_core::Error;

use crate::errors::to_pyerr;
use crate::gil::detached;

fn options(py: Python<'_>, compression: &str, level: Option<i32>) -> PyResult<DiffOptions> {
    let compression = Compression::parse(compression).ok_or_else(|| {
        to_pyerr(
            py,
            Error::InvalidArgument(format!(
                "unknown compression {compression:?}: expected \"gzip\", \"zstd\" or \"none\""
            )),
        )
    })?;
    Ok(DiffOptions { compression, level })
}

fn stats_dict(py: Python<'_>, stats: DiffStats) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("digest", stats.digest)?;
    d.set_item("size", stats.size)?;
    d.set_item("diff_id", stats.diff_id)?;
    d.set_item("uncompressed_size", stats.uncompressed_size)?;
    d.set_item("entries", stats.entries)?;
    Ok(d)
}

/// Writes a container's overlay upper dir as a layer blob at `dest` (complete or not
/// at all). With `lowers` (top first), whiteouts that hide nothing are left out.
#[pyfunction]
#[pyo3(
    signature = (upper, dest, *, lowers = Vec::new(), compression = "gzip", level = None),
    text_signature = "(upper, dest, *, lowers=(), compression='gzip', level=None)"
)]
fn diff_upper<'py>(
    py: Python<'py>,
    upper: PathBuf,
    dest: PathBuf,
    lowers: Vec<PathBuf>,
    compression: &str,
    level: Option<i32>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(py, compression, level)?;
    let stats = detached(py, move || {
        diff::write_upper_to_file(&upper, &lowers, &dest, opts)
    })?;
    stats_dict(py, stats)
}

/// Writes a whole tree as a layer blob at `dest`.
#[pyfunction]
#[pyo3(signature = (root, dest, *, compression = "gzip", level = None))]
fn tar_tree<'py>(
    py: Python<'py>,
    root: PathBuf,
    dest: PathBuf,
    compression: &str,
    level: Option<i32>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(py, compression, level)?;
    let stats = detached(py, move || diff::write_tree_to_file(&root, &dest, opts))?;
    stats_dict(py, stats)
}

/// Writes what changed from tree `old` to tree `new` as a layer blob at `dest`.
#[pyfunction]
#[pyo3(signature = (old, new, dest, *, compression = "gzip", level = None))]
fn diff_trees<'py>(
    py: Python<'py>,
    old: PathBuf,
    new: PathBuf,
    dest: PathBuf,
    compression: &str,
    level: Option<i32>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(py, compression, level)?;
    let stats = detached(py, move || {
        diff::write_changes_to_file(&old, &new, &dest, opts)
    })?;
    stats_dict(py, stats)
}

/// `docker diff`: (path, kind) pairs, kind 0 modified, 1 added, 2 deleted. With
/// `overlay`, `upper` is an overlay upper dir and the first argument its lower dirs
/// (top first); else both are plain trees, old and new.
#[pyfunction]
#[pyo3(signature = (lower_or_lowers, upper, *, overlay))]
fn changes(
    py: Python<'_>,
    lower_or_lowers: &Bound<'_, PyAny>,
    upper: PathBuf,
    overlay: bool,
) -> PyResult<Vec<(String, u8)>> {
    let found = if overlay {
        // One path is one lower; a str is not a sequence of lowers.
        let lowers = match lower_or_lowers.extract::<PathBuf>() {
            Ok(one) => vec![one],
            Err(_) => lower_or_lowers.extract::<Vec<PathBuf>>()?,
        };
        detached(py, move || diff::upper_changes(&upper, &lowers))?
    } else {
        let lower: PathBuf = lower_or_lowers.extract()?;
        detached(py, move || diff::changes(&lower, &upper))?
    };
    Ok(found.into_iter().map(|c| (c.path, c.kind.code())).collect())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(diff_upper, m)?)?;
    m.add_function(wrap_pyfunction!(tar_tree, m)?)?;
    m.add_function(wrap_pyfunction!(diff_trees, m)?)?;
    m.add_function(wrap_pyfunction!(changes, m)?)?;
    Ok(())
}
