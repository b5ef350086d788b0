//! Studies: what an experiment file names. Configurations with preset and data names,
//! drivers that turn those names into objects and run the library on them, and figures.
//!
//! The library layers (`device`, `crossbar`, `synapses`, `nn`, `learning`, `bayes`) take
//! built objects and return numbers; they never import this layer, `experiment` or
//! `output` (checked by `tests/architecture.rs`).
//!
//! - [`analog_sgd`]: the analog-SGD baseline on device tiles;
//! - [`bayesian_machine`]: the memristor Bayesian machine on MNIST-10k;
//! - [`bayesian_nn`]: the device-sampled Bayesian network;
//! - [`characterize`]: the standard device characterisation protocols of `xbar characterize`;
//! - [`metaplastic_pmnist`]: the metaplastic BNN on permuted MNIST;
//! - [`mram_rng`]: MRAM junctions as random bit generators;
//! - [`inference`], [`on_chip_training`]: the sweep kinds (sharing [`data_source`], the
//!   `[data]` section), and [`study_kinds`]: the drivers of the study kinds;
//! - [`KINDS`]: the registry of every experiment kind.

pub mod analog_sgd;
pub mod bayesian_machine;
pub mod bayesian_nn;
pub mod characterize;
pub mod data_source;
pub mod inference;
pub mod metaplastic_pmnist;
pub mod mram_rng;
pub mod on_chip_training;
pub mod study_kinds;
mod validate;

use crate::experiment::kinds::{self as kind, Kind, Runner};
use anyhow::Result;

/// Every kind, in the order `xbar run --help` lists them.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "inference",
        description: "train (or import) a network digitally, deploy it on crossbar tiles of a device preset, measure accuracy and energy",
        runner: Runner::Sweep(|| Box::new(inference::Inference::default())),
    },
    Kind {
        name: "on_chip_training",
        description: "train a network on crossbar tiles with an on-chip rule (equilibrium propagation or analog SGD), every update a pulse train: accuracy against the digital twin, pulses and write energy",
        runner: Runner::Sweep(|| Box::new(on_chip_training::OnChipTraining::default())),
    },
    Kind {
        name: "bayesian_machine",
        description: "memristor Bayesian machine (Harabi et al. 2023): naive Bayes by stochastic computing, accuracy versus bit-stream length and device errors",
        runner: Runner::Study(study_kinds::bayesian_machine),
    },
    Kind {
        name: "bayesian_nn",
        description: "Bayesian neural network whose posterior samples are device reads: accuracy, calibration and out-of-distribution detection versus samples and device noise",
        runner: Runner::Study(study_kinds::bayesian_nn),
    },
    Kind {
        name: "analog_sgd",
        description: "analog SGD with pulsed outer-product updates on device tiles, one run per device, against digital SGD: test accuracy per epoch, pulses and energy",
        runner: Runner::Study(study_kinds::analog_sgd),
    },
    Kind {
        name: "ep_mnist",
        description: "equilibrium propagation (Scellier & Bengio 2017; Laborieux et al. 2021) on MNIST-10k: train and test accuracy per epoch, time per epoch",
        runner: Runner::Study(study_kinds::ep_mnist),
    },
    Kind {
        name: "metaplastic_pmnist",
        description: "metaplastic binarized network on permuted MNIST (Laborieux et al. 2021): accuracy on every task after each task, per metaplasticity m, with 2T2R write counts and energy",
        runner: Runner::Study(study_kinds::metaplastic_pmnist),
    },
    Kind {
        name: "mram_rng",
        description: "MRAM random-bit generator from stochastic switching: bias versus amplitude, device spread, calibration, read disturb, energy per bit",
        runner: Runner::Study(study_kinds::mram_rng),
    },
];

/// The kind called `name`, or an error listing the kinds there are.
pub fn kind(name: &str) -> Result<&'static Kind> {
    kind::find(KINDS, name)
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
        let err = kind("no_such_kind").err().unwrap().to_string();
        assert!(KINDS.iter().all(|k| err.contains(k.name)), "{err}");
        assert!(kind("mram_rng").unwrap().is_study());
        assert!(!kind("inference").unwrap().is_study());
    }
}
