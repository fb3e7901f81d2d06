//! skiff-runtime: an OCI runtime with runc's command line.
//!
//! Layout: `spec` (config.json types), `cli` (argument parsing), `state` (what
//! lives under `--root`), `container/` (one module per verb), `init` (the sequence
//! the cloned child runs up to exec), and one module per kernel concern:
//! `namespaces`, `mounts`, `caps`, `rlimits`, `tty`, `hooks`, `cgroups/`, `seccomp/`.

pub mod cgroups;
pub mod error;
pub mod seccomp;
pub mod spec;

pub use error::{Error, Result};
