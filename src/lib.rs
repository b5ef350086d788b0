//! xbar: a simulator of in-memory computing crossbars built from emerging memories.
//!
//! Layers, from the bottom up (see `docs/ARCHITECTURE.md`):
//! - [`device`]: RRAM, PCM, MRAM and ideal device models with variability;
//! - [`crossbar`]: arrays of devices computing analog matrix-vector products with
//!   periphery, IR drop, programming and an energy ledger;
//! - [`synapses`]: weights stored on devices, the one seam networks and rules use (digital
//!   reference, crossbar tiles, 2T2R pairs read by sense amplifiers, device-sampled copies);
//! - [`nn`]: networks (digital reference MLP, binary/ternary, sequential with convolutions),
//!   digital backprop and deployment on tiles;
//! - [`learning`]: on-chip learning rules (equilibrium propagation, metaplasticity, pulsed SGD);
//! - [`bayes`]: Bayesian inference with device randomness (Bayesian machine, device-sampled BNNs, MRAM random bits);
//! - [`data`]: data sets (IDX, CIFAR-10 binary, NumPy `.npy` pairs; the embedded MNIST-10k,
//!   per-channel normalisation); [`npy`]: NumPy `.npy` files; [`rng`]:
//!   reproducible random streams and the registry of stream tags;
//! - [`output`]: atomic result files, locked output directories and figures shared by
//!   every command; [`atomic`]: atomic file writes; [`memory`]: estimates checked before
//!   large allocations;
//! - [`experiment`]: the engine: experiment files, `--set`, sweeps, the parallel, resumable,
//!   sharded driver;
//! - [`studies`]: what an experiment file names (drivers, figures), including the standard
//!   device characterisation protocols ([`studies::characterize`]); [`threads`]: worker
//!   thread pools.

#![warn(missing_docs)]

pub mod atomic;
pub mod bayes;
pub mod crossbar;
pub mod data;
pub mod device;
pub mod experiment;
pub mod learning;
pub(crate) mod linalg;
pub mod memory;
pub mod nn;
pub mod npy;
pub mod output;
pub mod rng;
pub mod studies;
pub mod synapses;
pub mod threads;
