//! Studies: what an experiment file names. Configurations with preset and data names,
//! drivers that turn those names into objects and run the library on them, and figures.
//!
//! The library layers (`device`, `crossbar`, `nn`, `learning`, `bayes`) take built objects
//! and return numbers; they never import this layer, `experiment` or `output`.
//!
//! - [`bayesian_machine`]: the memristor Bayesian machine on MNIST-10k;
//! - [`bayesian_nn`]: the device-sampled Bayesian network;
//! - [`mram_rng`]: MRAM junctions as random bit generators.

pub mod bayesian_machine;
pub mod bayesian_nn;
pub mod mram_rng;
