//! Skiff's core: the work that must be fast or must be right at the syscall level.
//!
//! Nothing here knows about Python; `rust/py` wraps it. Long operations take plain
//! Rust values and return [`Result`], so the binding layer can run them with the GIL
//! released and map [`Error`] to Python exceptions in one place.

pub mod compress;
pub mod diff;
pub mod digest;
pub mod error;
pub mod netns;
pub mod overlay;
pub mod spawn;
pub mod tree;
pub mod unpack;

pub use error::{Error, ErrorKind, Result};
