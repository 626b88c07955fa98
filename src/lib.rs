//! wgfleet: one fleet description in git, a reconciler on every host.
//!
//! Functional core, imperative shell: `fleet` (load, validate) → `plan` (one host's desired
//! state) → `render` (wg-quick files) are pure; the shell around them is the CLI.

pub mod access;
pub mod apply;
pub mod cli;
pub mod commands;
pub mod confirm;
pub mod diff;
pub mod endpoints;
pub mod error;
pub mod firewall;
pub mod fleet;
pub mod flow_pairs;
pub mod fsutil;
pub mod graph;
pub mod import;
pub mod operations;
pub mod plan;
pub mod render;
pub mod report;
pub mod secrets;
pub mod wgconf;

pub use error::{Error, Result};
