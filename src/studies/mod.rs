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
//! - [`mram_rng`]: MRAM junctions as random bit generators.

pub mod analog_sgd;
pub mod bayesian_machine;
pub mod bayesian_nn;
pub mod characterize;
pub mod metaplastic_pmnist;
pub mod mram_rng;
