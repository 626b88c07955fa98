//! wgfleet: one fleet description in git, a reconciler on every host.
//!
//! Functional core, imperative shell, in layers that only ever call down (tests/layering.rs
//! fails the build when one calls up):
//! - the pure core, values in and values out: `fleet` (the description, validation), `plan`
//!   (one host's desired state), `render`, `diff`, `operations` (what a step does, as a value),
//!   `confirm` and `endpoints` (decisions), `firewall` (rules), `access`, `history`, `graph`,
//!   `report`, `wgconf`, `unit`, `paths`;
//! - the inputs, read but never changed: `fleet::load` (JSON, Nix), `secrets` (age), `import`,
//!   `fsutil`, and `error`, the one error type the layers above return;
//! - `shell`: everything that touches the system, one run of `plan`/`apply` being
//!   `shell::pipeline`;
//! - the CLI edge: `cli` (flags) and `commands` (build a stage's input, print its result).

pub mod access;
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
pub mod history;
pub mod import;
pub mod join;
pub mod operations;
pub mod paths;
pub mod plan;
pub mod probe;
pub mod render;
pub mod report;
pub mod rotation;
pub mod secrets;
pub mod shell;
pub mod source;
pub mod text;
pub mod unit;
pub mod wgconf;

pub use error::{Error, Result};
