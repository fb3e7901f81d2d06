//! One module per command, each checking the container's state before it acts.

pub mod create;
pub mod delete;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod spec_cmd;
pub mod start;
pub mod update;
