//! Studies: what an experiment file names. Configurations with preset and data names,
//! drivers that turn those names into objects and run the library on them, and figures.
//!
//! The library layers (`device`, `crossbar`, `synapses`, `nn`, `learning`, `bayes`) take
//! built objects and return numbers; they never import this layer, `experiment` or
//! `output` (checked by `tests/architecture.rs`).
//!
//! - [`bayesian_machine`]: the memristor Bayesian machine on MNIST-10k;
//! - [`bayesian_nn`]: the device-sampled Bayesian network;
//! - [`characterize`]: the standard device characterisation protocols of `xbar characterize`;
//! - [`mcmc_wdbc`]: MCMC sampling in RRAM (device proposals) on the WDBC set;
//! - [`metaplastic_pmnist`]: the metaplastic BNN on permuted MNIST;
//! - [`mram_rng`]: MRAM junctions as random bit generators;
//! - [`inference`], [`on_chip_training`]: the sweep kinds (sharing [`data_source`], the
//!   `[data]` section), and [`study_kinds`]: the study kinds (configuration, driver,
//!   figures and result rows of each study);
//! - [`KINDS`]: the registry of every experiment kind.

pub mod bayesian_machine;
pub mod bayesian_nn;
pub mod characterize;
pub mod data_source;
pub mod inference;
pub mod mcmc_wdbc;
pub mod metaplastic_pmnist;
pub mod mram_rng;
pub mod on_chip_training;
pub mod study_kinds;
mod validate;

use crate::experiment::registry::{self, Entry};
use anyhow::Result;

/// Every experiment kind, in the order `xbar run --help` lists them: the one list that
/// dispatch, the help and the unknown-kind error read.
pub const KINDS: &[Entry] = &[
    Entry::sweep::<inference::Inference>(),
    Entry::sweep::<on_chip_training::OnChipTraining>(),
    Entry::study::<study_kinds::BayesianMachine>(),
    Entry::study::<study_kinds::BayesianNn>(),
    Entry::study::<study_kinds::McmcWdbc>(),
    Entry::study::<study_kinds::MetaplasticPmnist>(),
    Entry::study::<study_kinds::MramRng>(),
];

/// The kind called `name`, or an error listing the kinds there are.
pub fn kind(name: &str) -> Result<&'static Entry> {
    registry::find(KINDS, name)
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
        assert!(kind("mram_rng").unwrap().study);
        assert!(!kind("inference").unwrap().study);
    }
}
