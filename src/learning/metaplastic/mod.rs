//! Metaplasticity in binarized neural networks (Laborieux et al., "Synaptic metaplasticity
//! in binarized neural networks", Nature Communications 12, 2549, 2021) with the binary
//! weights on 2T2R arrays of a device preset.
//!
//! - [`meta_adam`]: the metaplastic Adam update — steps that move a hidden weight `W_h`
//!   towards zero are scaled by `f_meta = 1 − tanh²(m·W_h)` — as a
//!   [`LearningRule`](super::rule::LearningRule), [`MetaplasticAdam`], which owns the
//!   hidden weights and proposes the change of the binary weights `sign(W_h)`;
//! - [`network`]: a binarized MLP with digital batch norm on
//!   [`BinarySynapses`](crate::synapses::BinarySynapses) (the 2T2R pairs of the synapse
//!   seam, re-programmed only where a sign flips), trained by any learning rule through the
//!   same API as analog SGD.
//!
//! The permuted-MNIST experiment that uses them is the study
//! `crate::studies::metaplastic_pmnist`.

pub mod meta_adam;
pub mod network;

pub use crate::nn::optim::{AdamHyper, AdamMoments};
pub use meta_adam::{MetaRule, MetaplasticAdam, f_meta, modulate};
pub use network::{BatchNormAdam, BatchNormParams, MetaplasticBnn, StepReport};
