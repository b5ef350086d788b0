//! Synapses: weights stored on devices, behind one seam that every network and learning
//! rule uses.
//!
//! - [`SynapticLayer`]: the read-only operator, forward read `W·x` and transposed read
//!   `Wᵀ·y` (all a network needs for inference; `crate::nn::Network` runs on any of them);
//!   [`PlasticSynapses`] adds the updates (outer-product [`OuterProductUpdate`] and dense)
//!   that learning rules write through.
//! - [`DigitalSynapses`] (`layer`): an `f32` matrix (full or block-diagonal), the
//!   floating-point reference.
//! - [`CrossbarSynapses`] (`tile`): the conductances of one crossbar tile of any device, read
//!   with its forward and transposed analog MVMs on the same devices and updated by
//!   programming pulses.
//! - [`BinarySynapses`] (`pairs`): binary weights on 2T2R pairs of crossbar tiles, read
//!   through the tiles' precharge sense amplifiers (`crossbar::sense`) and re-programmed
//!   only where a sign flips (`crossbar::reprogram`), with the write tally.
//! - [`AnalogSynapses`] (`analog`): a trained weight matrix on analog tiles for inference,
//!   with input scaling.
//! - [`SensedSynapses`] (`sensed`): trained binary/ternary weights on 2T2R tiles for
//!   inference, read through the sense amplifiers with a bit-error count.
//!
//! - [`SampledSynapses`] (`sampled`): one device-programmed copy of a weight matrix on
//!   differential pairs ([`DevicePairs`]), read with the devices' read noise: the weight
//!   samples of the Bayesian network `bayes::bnn`.
//!
//! Inference, equilibrium propagation, analog SGD, the metaplastic BNN and the Bayesian
//! network hold their weights here. `SampledSynapses` is read-only with a read that takes
//! the caller's noise stream, so it has its own `forward` rather than `SynapticLayer`'s.

pub mod analog;
pub mod layer;
pub mod pairs;
pub mod sampled;
pub mod sensed;
pub mod tile;

pub use analog::{AnalogSynapses, InputScaling};
pub use layer::{
    DigitalSynapses, Fold, InputSource, OuterProductUpdate, PlasticSynapses, SynapticLayer,
    column_block, forward_whole, read_block_diagonal, read_generated_blocks,
};
pub use pairs::{BinarySynapses, WriteTally};
pub use sampled::{DevicePairs, PairWeight, SampledSynapses};
pub use sensed::SensedSynapses;
pub use tile::{CrossbarSynapses, program_layers};
