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
//! Equilibrium propagation, analog SGD and the metaplastic BNN hold their weights here. Still
//! outside this seam (to be moved here): the inference deployment of `experiment::deploy`
//! (`AnalogLayer` over `TiledMatrix`), the device-sampled weights of `bayes::bnn`, and the
//! 2T2R sense-amplifier read of `crossbar::sense`, which `BinarySynapses` does not use yet
//! (it reads the stored sign G+ > G- without offset or read noise).

pub mod layer;
pub mod pairs;
pub mod tile;

pub use layer::{DigitalSynapses, OuterProductUpdate, PlasticSynapses, SynapticLayer};
pub use pairs::{BinarySynapses, WriteTally};
pub use tile::{CrossbarSynapses, program_layers};
