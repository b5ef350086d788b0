//! xbar: a simulator of in-memory computing crossbars built from emerging memories.
//!
//! Layers, from the bottom up (see `docs/ARCHITECTURE.md`):
//! - [`device`]: RRAM, PCM, MRAM and ideal device models with variability;
//! - [`crossbar`]: arrays of devices computing analog matrix-vector products with
//!   periphery, IR drop, programming and an energy ledger;
//! - [`nn`]: networks (digital reference MLP, binary/ternary, analog deployment);
//! - [`learning`]: on-chip learning rules (equilibrium propagation, metaplasticity, pulsed SGD);
//! - [`bayes`]: Bayesian inference with device randomness (Bayesian machine, device-sampled BNNs, MRAM random bits);
//! - [`data`]: IDX data sets and the embedded MNIST-10k;
//! - [`output`]: atomic result files, locked output directories and figures shared by
//!   every command; [`memory`]: estimates checked before large allocations;
//! - [`characterize`]: the standard device characterisation protocols;
//! - [`studies`]: what experiment files name (configurations with preset and data names,
//!   drivers, figures), on top of the library layers.

pub mod bayes;
pub mod characterize;
pub mod crossbar;
pub mod data;
pub mod device;
pub mod experiment;
pub mod learning;
pub(crate) mod linalg;
pub mod memory;
pub mod nn;
pub mod output;
pub mod rng;
pub mod studies;
