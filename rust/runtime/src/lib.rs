//! skiff-runtime: an OCI runtime with runc's command line.
//!
//! Layout: `spec` (config.json types), `cli` (argument parsing), `state` (what
//! lives under `--root`), `container/` (one module per command), `init` (what the
//! cloned child runs up to exec), `process` (identity, limits and exec, shared by
//! init and exec), and one module per kernel concern: `namespaces`, `mounts`,
//! `caps`, `rlimits`, `tty`, `hooks`, `signals`, `cgroups/`, `seccomp/`.

pub mod caps;
pub mod cgroups;
pub mod cli;
pub mod container;
pub mod error;
pub mod hooks;
pub mod init;
pub mod log;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod rlimits;
pub mod seccomp;
pub mod signals;
pub mod spec;
pub mod state;
pub mod sys;
pub mod tty;

pub use error::{Error, Result};
