//! Experiments: TOML files that describe a data set, a network, its training, the
//! simulated hardware, a sweep over any configuration value, repeats and plots; the
//! driver that runs them in parallel, resumably and in shards; and the result files.
//!
//! Flow: [`config::load`] reads the file into a [`run::Plan`] (base configuration with
//! every default, sweep axes, seed, repeats, plots) and an [`kinds::ExperimentKind`];
//! [`run::execute`] validates every point, prepares shared work, runs the
//! (point, repeat) jobs in parallel and writes `results.csv`, `summary.csv`, `run.json`
//! and the plots. Self-contained studies with their own internal sweeps and figures
//! (the Bayesian kinds) run through [`study`] instead.

pub mod config;
pub mod deploy;
pub mod inference;
pub mod inputs;
pub mod kinds;
pub mod on_chip_training;
pub mod run;
pub mod stats;
pub mod study;
pub mod sweep;
pub mod table;
pub mod tree;
