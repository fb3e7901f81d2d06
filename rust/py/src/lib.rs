//! `skiff._native`: thin bindings over `skiff-core`.
//!
//! Every function here converts arguments, calls the core through [`gil::detached`]
//! (which releases the GIL and maps errors), and converts the result. Nothing else.

mod diff;
mod digest;
mod errors;
mod gil;
mod overlay;
mod spawn;
mod unpack;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    digest::register(m)?;
    unpack::register(m)?;
    diff::register(m)?;
    overlay::register(m)?;
    spawn::register(m)?;
    Ok(())
}
