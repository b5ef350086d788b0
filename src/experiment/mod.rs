//! The experiment engine: TOML experiment files, `--set` overrides, sweeps over any
//! configuration value, repeats, the parallel, resumable and sharded driver, and the result
//! files it writes. What an experiment *does* is a kind of the registry in
//! `crate::studies` (this module never imports it: the kinds are handed in).
//!
//! Flow: [`config::load`] reads the file into a [`run::Plan`] (base configuration with
//! every default, sweep axes, seed, repeats, plots, input fingerprints) and a
//! [`kinds::ExperimentKind`]; [`run::execute`] validates every point, locks the output
//! directory, prepares shared work, runs the (point, repeat) jobs in parallel and writes
//! `results.csv`, `summary.csv`, `run.json` and the plots. Studies with their own internal
//! sweeps and figures run through their driver ([`kinds::Runner::Study`]) instead.

pub mod config;
pub mod inputs;
pub mod kinds;
pub mod run;
pub mod stats;
pub mod sweep;
pub mod table;
pub mod tree;
