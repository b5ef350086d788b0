//! Bayesian inference on memory devices: the memristor Bayesian machine, device-sampled
//! Bayesian networks, MRAM random bits.
//!
//! - [`mram_rng`]: a true random bit generator from the stochastic switching of STT magnetic
//!   tunnel junctions (pulse at the 50 % switching point, read, reset), with per-device
//!   calibration of the pulse amplitude, read disturb, throughput and energy per bit;
//! - [`machine`]: the memristor Bayesian machine (Harabi et al., Nature Electronics 2023): a
//!   naive-Bayes classifier whose quantised likelihoods live in binary memory cells and whose
//!   products are computed by stochastic computing with random bit streams;
//! - [`bnn`]: a Bayesian MLP trained by Bayes by backprop (Blundell et al., ICML 2015) whose
//!   weight samples are drawn by programming and reading memory devices (Dalgaty et al.,
//!   Nature Electronics 2021; Bonnet et al., Nature Communications 2023);
//! - [`mcmc`]: Metropolis–Hastings sampling of a Bayesian logistic regression whose proposals
//!   are RRAM re-programmings (Dalgaty et al., Nature Electronics 2021), with the software
//!   random-walk baseline, the stored samples' predictive and the sampler's energy ledger;
//! - [`metrics`]: calibration and uncertainty metrics (expected calibration error, AUROC,
//!   predictive entropy, mutual information).
//!
//! These modules take built objects (device models, data sets) and typed parameters and
//! return numbers. The studies that name presets and data, run the sweeps and draw the
//! figures are in the `studies` layer (`bayesian_machine`, `bayesian_nn`, `mram_rng`).

pub mod bnn;
pub mod machine;
pub mod mcmc;
pub mod metrics;
pub mod mram_rng;
