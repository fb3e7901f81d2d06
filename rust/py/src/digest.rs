//! sha256 and xxh3-128 for Python: streaming objects and whole files by path.

use std::path::PathBuf;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use skiff_core::digest::{self, Sha256Digester, Xxh3Hasher};
use skiff_core::Error;

use crate::errors::to_pyerr;
use crate::gil::{detached, SendBytes, DETACH_THRESHOLD};

/// Runs `f` over the bytes of any C-contiguous buffer (bytes, bytearray, memoryview,
/// mmap ...), releasing the GIL when the input is large.
fn with_bytes<T: Send>(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    f: impl FnOnce(&[u8]) -> T + Send,
) -> PyResult<T> {
    let buf: PyBuffer<u8> = PyBuffer::get(data)?;
    if !buf.is_c_contiguous() {
        return Err(to_pyerr(
            py,
            Error::InvalidArgument("buffer must be C-contiguous".into()),
        ));
    }
    // SAFETY: `buf` holds the export, which pins the memory until it is dropped after
    // this function returns; `detached` does not return before `f` has finished.
    let bytes = unsafe { SendBytes::new(buf.buf_ptr() as *const u8, buf.len_bytes()) };
    let out = if bytes.as_slice().len() >= DETACH_THRESHOLD {
        detached(py, move || Ok(f(bytes.as_slice())))?
    } else {
        f(bytes.as_slice())
    };
    drop(buf);
    Ok(out)
}

fn finished() -> Error {
    Error::InvalidArgument("digester already finalized".into())
}

/// A streaming sha256 digester: `update()` any number of times, then `finalize()`.
#[pyclass(module = "skiff._native", name = "Sha256")]
pub struct PySha256 {
    inner: Option<Sha256Digester>,
}

#[pymethods]
impl PySha256 {
    #[new]
    #[pyo3(signature = (data = None))]
    fn new(py: Python<'_>, data: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let mut this = Self {
            inner: Some(Sha256Digester::new()),
        };
        if let Some(data) = data {
            this.update(py, data)?;
        }
        Ok(this)
    }

    /// Adds bytes (any buffer) to the digest.
    fn update(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let digester = self
            .inner
            .as_mut()
            .ok_or_else(|| to_pyerr(py, finished()))?;
        with_bytes(py, data, |bytes| digester.update(bytes))
    }

    /// The 32-byte digest of what went in so far.
    fn digest<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let d = self
            .inner
            .as_ref()
            .ok_or_else(|| to_pyerr(py, finished()))?;
        Ok(PyBytes::new(py, &d.peek()))
    }

    /// The hex digest of what went in so far.
    fn hexdigest(&self, py: Python<'_>) -> PyResult<String> {
        let d = self
            .inner
            .as_ref()
            .ok_or_else(|| to_pyerr(py, finished()))?;
        Ok(hex_of(&d.peek()))
    }

    /// Ends the stream and returns the OCI digest, `sha256:<hex>`.
    fn finalize(&mut self, py: Python<'_>) -> PyResult<String> {
        let d = self.inner.take().ok_or_else(|| to_pyerr(py, finished()))?;
        Ok(digest::oci_digest(&d.finalize()))
    }

    /// Bytes hashed so far.
    #[getter]
    fn size(&self, py: Python<'_>) -> PyResult<u64> {
        let d = self
            .inner
            .as_ref()
            .ok_or_else(|| to_pyerr(py, finished()))?;
        Ok(d.len())
    }

    fn copy(&self, py: Python<'_>) -> PyResult<Self> {
        let d = self
            .inner
            .as_ref()
            .ok_or_else(|| to_pyerr(py, finished()))?;
        Ok(Self {
            inner: Some(d.clone()),
        })
    }
}

/// A streaming xxh3-128 hasher.
#[pyclass(module = "skiff._native", name = "Xxh3")]
#[derive(Default)]
pub struct PyXxh3 {
    inner: Xxh3Hasher,
}

#[pymethods]
impl PyXxh3 {
    #[new]
    #[pyo3(signature = (data = None))]
    fn new(py: Python<'_>, data: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let mut this = Self::default();
        if let Some(data) = data {
            this.update(py, data)?;
        }
        Ok(this)
    }

    fn update(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let hasher = &mut self.inner;
        with_bytes(py, data, |bytes| hasher.update(bytes))
    }

    /// The 128-bit hash as an int.
    fn intdigest(&self) -> u128 {
        self.inner.digest128()
    }

    /// The 128-bit hash as 32 hex digits.
    fn hexdigest(&self) -> String {
        format!("{:032x}", self.inner.digest128())
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a file, read and hashed without the GIL; returns `sha256:<hex>`.
#[pyfunction]
fn sha256_file(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    let (sum, _) = detached(py, move || digest::sha256_file(&path))?;
    Ok(digest::oci_digest(&sum))
}

/// Checks a file against `sha256:<hex>`; returns its size or raises DigestMismatch.
#[pyfunction]
fn verify_file(py: Python<'_>, path: PathBuf, expected: String) -> PyResult<u64> {
    detached(py, move || digest::verify_file(&path, &expected))
}

/// xxh3-128 of a file, as an int.
#[pyfunction]
fn xxh3_128_file(py: Python<'_>, path: PathBuf) -> PyResult<u128> {
    let (sum, _) = detached(py, move || digest::xxh3_128_file(&path))?;
    Ok(sum)
}

/// xxh3-128 of a buffer, as an int.
#[pyfunction]
fn xxh3_128(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<u128> {
    with_bytes(py, data, digest::xxh3_128)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySha256>()?;
    m.add_class::<PyXxh3>()?;
    m.add_function(wrap_pyfunction!(sha256_file, m)?)?;
    m.add_function(wrap_pyfunction!(verify_file, m)?)?;
    m.add_function(wrap_pyfunction!(xxh3_128_file, m)?)?;
    m.add_function(wrap_pyfunction!(xxh3_128, m)?)?;
    Ok(())
}
