//! What xbar writes for a person to read: result files (atomic CSV/JSON, run records,
//! locked output directories, input fingerprints) and figures (PNG + SVG with an embedded
//! font). Only the studies, the experiment driver and the command line use this module;
//! the library layers below them (devices, crossbar, networks, learning rules, Bayesian
//! models) never write files or draw.

pub mod plot;
pub mod results;
