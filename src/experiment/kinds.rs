//! The kinds of experiment `xbar run` knows, behind one trait.
//!
//! A kind owns the configuration sections of its experiments (completing them with
//! defaults and rejecting unknown keys), names the metrics each job returns, and runs
//! jobs (see [`JobKind`]).

use super::run::JobKind;
use anyhow::{Result, bail};
use toml::Value;

/// An experiment kind.
pub trait ExperimentKind: JobKind {
    /// The metrics each job returns, in order (the columns of `results.csv`).
    fn metrics(&self) -> Vec<String>;
    /// Parse the kind's sections (everything but `[experiment]`, `[[sweep]]` and
    /// `[[plot]]`), fill in every default and return them as a tree; unknown sections or
    /// keys and out-of-range values are errors naming the key.
    fn complete(&self, body: Value) -> Result<Value>;
}

/// The kinds, with a one-line description each.
pub const KINDS: &[(&str, &str)] = &[
    (
        "inference",
        "train (or import) a network digitally, deploy it on crossbar tiles of a device preset, measure accuracy and energy",
    ),
    (
        "on_chip_training",
        "train a network on crossbar tiles with an on-chip rule (equilibrium propagation or analog SGD), every update a pulse train: accuracy against the digital twin, pulses and write energy",
    ),
];

/// The kind called `name`.
pub fn by_name(name: &str) -> Result<Box<dyn ExperimentKind>> {
    match name {
        "inference" => Ok(Box::new(super::inference::Inference::default())),
        "on_chip_training" => Ok(Box::new(super::on_chip_training::OnChipTraining::default())),
        other => {
            let known: Vec<String> = KINDS
                .iter()
                .chain(super::study::STUDIES)
                .map(|(k, d)| format!("  {k}: {d}"))
                .collect();
            bail!(
                "experiment.kind = '{other}' is not a kind xbar knows; the kinds are:\n{}",
                known.join("\n")
            )
        }
    }
}
