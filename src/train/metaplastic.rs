//! Metaplasticity in binarized neural networks (Laborieux et al., "Synaptic metaplasticity
//! in binarized neural networks", Nature Communications 12, 2549, 2021) with the binary
//! weights on 2T2R arrays of a device preset.
//!
//! - [`rule`]: the metaplastic Adam update: steps that move a hidden weight `W_h`
//!   towards zero are scaled by `f_meta = 1 − tanh²(m·W_h)`;
//! - [`network`]: a binarized MLP with batch norm whose binary weights `sign(W_h)` are
//!   stored on pairs of device cells, re-programmed whenever the sign flips;
//! - [`synapses`]: the 2T2R pair and its write cost (pulses, energy);
//! - [`pmnist`]: the permuted-MNIST continual-learning experiment (`run_pmnist`).

pub mod network;
pub mod pmnist;
pub mod rule;
pub mod synapses;

pub use network::{BatchNormParams, BnnOptimizer, MetaplasticBnn, StepReport};
pub use pmnist::{
    PmnistConfig, PmnistReport, TaskWrites, forgetting_panels, mean_accuracy_figure, pmnist_table,
    run_pmnist, run_pmnist_on, save_pmnist_outputs,
};
pub use rule::{AdamHyper, AdamMoments, MetaRule, f_meta, modulate};
pub use synapses::WriteTally;
