//! The experiment engine: TOML experiment files, `--set` overrides, sweeps over any
//! configuration value, repeats, the parallel, resumable and sharded driver, and the result
//! files it writes. What an experiment *does* is a kind of the registry in
//! `crate::studies` (this module never imports it: the kinds are handed in).
//!
//! Flow: [`registry::dispatch`] reads the file once and hands it to its kind's driver (an
//! [`registry::Entry`] of the registry). For a [`kinds::SweepKind`],
//! [`config::plan_from_table`] parses the kind's sections into its typed configuration and
//! builds a [`run::Plan`] (base configuration with every default, sweep axes, seed,
//! repeats, metrics, plots, input fingerprints); [`run::execute`] validates every point,
//! locks the output directory, prepares shared work, runs the (point, repeat) jobs in
//! parallel and writes `results.csv`, `summary.csv`, `run.json` and the plots. A
//! [`kinds::StudyKind`] runs through [`study::drive_study`] instead, which writes the same
//! three files plus `report.json` and its figures.

pub mod config;
pub mod inputs;
pub mod kinds;
pub mod registry;
pub mod run;
pub mod stats;
pub mod study;
pub mod sweep;
pub mod table;
pub mod tree;
