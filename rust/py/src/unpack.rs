//! Layer unpack for Python: `unpack_layer(src, dest, ...)`, a blob (path or fd) to a
//! directory in one pass without the GIL.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyInt};
use skiff_core::unpack::{self, UnpackOptions, Whiteouts};
use skiff_core::Error;

use crate::errors::to_pyerr;
use crate::gil::detached;

enum Source {
    Path(PathBuf),
    Fd(OwnedFd),
}

/// Takes `src`: an int is a file descriptor this call owns from here on (closed on
/// every path, errors included); anything else is a path.
fn source(py: Python<'_>, src: &Bound<'_, PyAny>) -> PyResult<Source> {
    if src.is_instance_of::<PyInt>() && !src.is_instance_of::<PyBool>() {
        let fd: RawFd = src.extract()?;
        if fd < 0 {
            return Err(to_pyerr(
                py,
                Error::InvalidArgument(format!("invalid file descriptor {fd}")),
            ));
        }
        // SAFETY: fcntl only asks whether the fd is open.
        if unsafe { libc_fcntl_getfd(fd) } < 0 {
            let e = std::io::Error::last_os_error();
            return Err(to_pyerr(py, Error::io(format!("<fd {fd}>"), e)));
        }
        // SAFETY: the fd is open and the caller hands it over (documented).
        return Ok(Source::Fd(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    Ok(Source::Path(src.extract()?))
}

unsafe fn libc_fcntl_getfd(fd: RawFd) -> i32 {
    extern "C" {
        fn fcntl(fd: i32, cmd: i32, ...) -> i32;
    }
    const F_GETFD: i32 = 1;
    fcntl(fd, F_GETFD)
}

/// Unpacks a layer blob (gzip, zstd or plain tar, detected from its first bytes) into
/// `dest` in one streaming pass: hashes the blob and the tar, checks them against the
/// expected digests, and removes what it wrote on any error.
///
/// Arguments other than `src` are taken untyped and converted here, after `src`: an fd
/// is then owned (and closed) even when another argument has the wrong type.
#[pyfunction]
#[pyo3(
    signature = (
        src,
        dest,
        *,
        expected_digest = None,
        expected_diff_id = None,
        whiteouts = None,
        same_owner = None,
    ),
    text_signature = "(src, dest, *, expected_digest=None, expected_diff_id=None, \
                      whiteouts='overlay', same_owner=None)"
)]
fn unpack_layer<'py>(
    py: Python<'py>,
    src: &Bound<'py, PyAny>,
    dest: &Bound<'py, PyAny>,
    expected_digest: Option<&Bound<'py, PyAny>>,
    expected_diff_id: Option<&Bound<'py, PyAny>>,
    whiteouts: Option<&Bound<'py, PyAny>>,
    same_owner: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    // First, so that the fd is closed whatever goes wrong below.
    let source = source(py, src)?;
    let dest: PathBuf = dest.extract()?;
    let expected_digest: Option<String> = expected_digest.map(|v| v.extract()).transpose()?;
    let expected_diff_id: Option<String> = expected_diff_id.map(|v| v.extract()).transpose()?;
    let whiteouts: String = match whiteouts {
        Some(v) => v.extract()?,
        None => "overlay".to_string(),
    };
    let same_owner: Option<bool> = same_owner.map(|v| v.extract()).transpose()?;
    let whiteouts = Whiteouts::parse(&whiteouts).ok_or_else(|| {
        to_pyerr(
            py,
            Error::InvalidArgument(format!(
                "whiteouts must be \"overlay\" or \"apply\", not {whiteouts:?}"
            )),
        )
    })?;
    let defaults = UnpackOptions::default();
    let opts = UnpackOptions {
        expected_digest,
        expected_diff_id,
        whiteouts,
        same_owner: same_owner.unwrap_or(defaults.same_owner),
        ..defaults
    };
    let stats = detached(py, move || match source {
        Source::Path(path) => unpack::unpack_file(&path, &dest, &opts),
        Source::Fd(fd) => unpack::unpack_fd(fd, &dest, &opts),
    })?;
    let out = PyDict::new(py);
    out.set_item("digest", &stats.digest)?;
    out.set_item("compressed_size", stats.compressed_size)?;
    out.set_item("diff_id", &stats.diff_id)?;
    out.set_item("size", stats.size)?;
    out.set_item("entries", stats.entries)?;
    out.set_item("compression", stats.compression_name())?;
    Ok(out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(unpack_layer, m)?)?;
    Ok(())
}
