//! The one place long native calls run: with the GIL released, errors mapped to
//! Python exceptions, and a Ctrl-C that arrived meanwhile raised as soon as the
//! call returns.

use pyo3::prelude::*;

use crate::errors::to_pyerr;

/// Runs `f` without the GIL and converts its result for Python.
pub fn detached<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: Send + FnOnce() -> skiff_core::Result<T>,
    T: Send,
{
    let result = py.detach(f);
    py.check_signals()?;
    result.map_err(|e| to_pyerr(py, e))
}

/// Calls below this many bytes of input are cheaper to run holding the GIL.
pub const DETACH_THRESHOLD: usize = 64 * 1024;

/// A borrowed byte region that may cross into a GIL-free closure.
///
/// The caller keeps the Python buffer (and so the memory) alive and unmovable for as
/// long as the closure runs; [`detached`] returns only after the closure ends.
#[derive(Clone, Copy)]
pub struct SendBytes {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the pointee is a Python buffer export that stays pinned while borrowed; it is
// only read.
unsafe impl Send for SendBytes {}
unsafe impl Sync for SendBytes {}

impl SendBytes {
    /// # Safety
    /// `ptr..ptr+len` must stay valid and unchanged while the value is used.
    pub unsafe fn new(ptr: *const u8, len: usize) -> Self {
        Self { ptr, len }
    }

    pub fn as_slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: guaranteed by the contract of `new`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}
