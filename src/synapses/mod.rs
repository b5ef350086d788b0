//! Synapses: weights stored on devices, behind one seam that every network and learning
//! rule uses.
//!
//! - [`SynapticLayer`]: the forward read `W·x`, the transposed read `Wᵀ·y` and the local
//!   outer-product update ([`OuterProductUpdate`]); [`PlasticSynapses`] adds dense updates.
//! - [`DigitalSynapses`] (`layer`): an `f32` matrix, the floating-point reference.
//! - [`CrossbarSynapses`] (`tile`): the conductances of one crossbar tile of any device, read
//!   with its forward and transposed analog MVMs on the same devices and updated by
//!   programming pulses.
//! - [`BinarySynapses`] (`pairs`): binary weights on 2T2R device pairs, re-programmed only
//!   where a sign flips, with the write tally.
//!
//! - [`SampledSynapses`] (`sampled`): one device-programmed copy of a weight matrix on
//!   differential pairs ([`DevicePairs`]), read with the devices' read noise: the weight
//!   samples of the Bayesian network `bayes::bnn`.
//!
//! - [`deploy`]: a trained network's weights on tiles for inference — `AnalogLayer`
//!   (analog reads of a `TiledMatrix`, input scaling, calibrated ADCs) and `SensedLayer`
//!   (binary/ternary weights read through the 2T2R sense amplifiers of `crossbar::sense`),
//!   both behind the networks' `MatrixOperator`.
//!
//! Equilibrium propagation, analog SGD, the metaplastic BNN, inference deployment and the
//! Bayesian network hold their weights here. Not yet unified: `deploy`'s layers implement
//! `nn::MatrixOperator` rather than `SynapticLayer`; `SampledSynapses` is read-only with a
//! read that takes the caller's noise stream, so it has its own `forward` rather than
//! `SynapticLayer`'s; and `BinarySynapses` reads the stored sign G+ > G- without the sense
//! amplifier's offset and read noise that `SensedLayer` models.

pub mod deploy;
pub mod layer;
pub mod pairs;
pub mod sampled;
pub mod tile;

pub use layer::{DigitalSynapses, OuterProductUpdate, PlasticSynapses, SynapticLayer};
pub use pairs::{BinarySynapses, WriteTally};
pub use sampled::{DevicePairs, PairWeight, SampledSynapses};
pub use tile::{CrossbarSynapses, program_layers};
