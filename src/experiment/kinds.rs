//! The one registry of experiment kinds: every kind `xbar run` knows, with its description
//! and how it runs. Dispatch, `xbar run --help` and the error for an unknown kind all read
//! [`KINDS`]; adding a kind is adding one entry.
//!
//! A sweep kind owns the configuration sections of its experiments (completing them with
//! defaults and rejecting unknown keys), names the metrics each job returns, and runs jobs
//! (see [`JobKind`]); the driver runs them over the `[[sweep]]` grid. A study is one driver
//! with its own internal sweep, report and figures.

use super::config::{ExperimentSection, Overrides};
use super::run::JobKind;
use super::study;
use anyhow::{Result, bail};
use std::path::Path;
use toml::Value;

/// A sweep kind.
pub trait ExperimentKind: JobKind {
    /// The metrics each job returns, in order (the columns of `results.csv`).
    fn metrics(&self) -> Vec<String>;
    /// Parse the kind's sections (everything but `[experiment]`, `[[sweep]]` and
    /// `[[plot]]`), fill in every default and return them as a tree; unknown sections or
    /// keys and out-of-range values are errors naming the key.
    fn complete(&self, body: Value) -> Result<Value>;
}

/// A study's driver: called with the `[experiment]` section, the kind's own section, the
/// command-line overrides and the output directory (`None`: only check the configuration).
pub type StudyDriver = fn(&ExperimentSection, Value, &Overrides, Option<&Path>) -> Result<()>;

/// How a kind runs.
#[derive(Clone, Copy)]
pub enum Runner {
    /// Jobs over the `[[sweep]]` grid and repeats, by the experiment driver.
    Sweep(fn() -> Box<dyn ExperimentKind>),
    /// One study driver.
    Study(StudyDriver),
}

/// One entry of the registry.
pub struct Kind {
    /// The `experiment.kind` value.
    pub name: &'static str,
    /// One line: what the kind does.
    pub description: &'static str,
    /// How it runs.
    pub runner: Runner,
}

impl Kind {
    /// Whether the kind is a study (no `[[sweep]]` grid, no shards).
    pub fn is_study(&self) -> bool {
        matches!(self.runner, Runner::Study(_))
    }
}

/// Every kind, in the order `xbar run --help` lists them.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "inference",
        description: "train (or import) a network digitally, deploy it on crossbar tiles of a device preset, measure accuracy and energy",
        runner: Runner::Sweep(|| Box::new(super::inference::Inference::default())),
    },
    Kind {
        name: "on_chip_training",
        description: "train a network on crossbar tiles with an on-chip rule (equilibrium propagation or analog SGD), every update a pulse train: accuracy against the digital twin, pulses and write energy",
        runner: Runner::Sweep(|| Box::new(super::on_chip_training::OnChipTraining::default())),
    },
    Kind {
        name: "bayesian_machine",
        description: "memristor Bayesian machine (Harabi et al. 2023): naive Bayes by stochastic computing, accuracy versus bit-stream length and device errors",
        runner: Runner::Study(study::bayesian_machine),
    },
    Kind {
        name: "bayesian_nn",
        description: "Bayesian neural network whose posterior samples are device reads: accuracy, calibration and out-of-distribution detection versus samples and device noise",
        runner: Runner::Study(study::bayesian_nn),
    },
    Kind {
        name: "analog_sgd",
        description: "analog SGD with pulsed outer-product updates on device tiles, one run per device, against digital SGD: test accuracy per epoch, pulses and energy",
        runner: Runner::Study(study::analog_sgd),
    },
    Kind {
        name: "ep_mnist",
        description: "equilibrium propagation (Scellier & Bengio 2017; Laborieux et al. 2021) on MNIST-10k: train and test accuracy per epoch, time per epoch",
        runner: Runner::Study(study::ep_mnist),
    },
    Kind {
        name: "metaplastic_pmnist",
        description: "metaplastic binarized network on permuted MNIST (Laborieux et al. 2021): accuracy on every task after each task, per metaplasticity m, with 2T2R write counts and energy",
        runner: Runner::Study(study::metaplastic_pmnist),
    },
    Kind {
        name: "mram_rng",
        description: "MRAM random-bit generator from stochastic switching: bias versus amplitude, device spread, calibration, read disturb, energy per bit",
        runner: Runner::Study(study::mram_rng),
    },
];

/// The kind called `name`, or an error listing the kinds there are.
pub fn by_name(name: &str) -> Result<&'static Kind> {
    match KINDS.iter().find(|k| k.name == name) {
        Some(kind) => Ok(kind),
        None => bail!(
            "experiment.kind = '{name}' is not a kind xbar knows; the kinds are:\n{}",
            help_lines()
        ),
    }
}

/// One line per kind, `  name: description`.
pub fn help_lines() -> String {
    KINDS
        .iter()
        .map(|k| format!("  {}: {}", k.name, k.description))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_unique_and_unknown_names_list_them_all() {
        for (i, k) in KINDS.iter().enumerate() {
            assert!(
                KINDS[i + 1..].iter().all(|o| o.name != k.name),
                "{}",
                k.name
            );
        }
        let err = by_name("no_such_kind").err().unwrap().to_string();
        assert!(KINDS.iter().all(|k| err.contains(k.name)), "{err}");
        assert!(by_name("mram_rng").unwrap().is_study());
        assert!(!by_name("inference").unwrap().is_study());
    }
}
