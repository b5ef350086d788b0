//! Synapses: weights stored on devices, behind one seam that every network and learning
//! rule uses.
//!
//! - [`SynapticLayer`]: the forward read `W·x`, the transposed read `Wᵀ·y` and the local
//!   outer-product update ([`OuterProductUpdate`]); [`PlasticSynapses`] adds dense updates.
//! - [`DigitalSynapses`] (`layer`): an `f32` matrix, the floating-point reference.
//! - [`CrossbarSynapses`] (`tile`): the conductances of one crossbar tile of any device, read
//!   with its forward and transposed analog MVMs on the same devices and updated by
//!   programming pulses.
//! - [`BinarySynapses`] (`pairs`): binary weights on 2T2R pairs of crossbar tiles, read
//!   through the tiles' precharge sense amplifiers (`crossbar::sense`) and re-programmed
//!   only where a sign flips (`crossbar::reprogram`), with the write tally.
//!
//! - [`deploy`]: a trained network's weights on tiles for inference — `AnalogLayer`
//!   (analog reads of a `TiledMatrix`, input scaling, calibrated ADCs) and `SensedLayer`
//!   (binary/ternary weights read through the 2T2R sense amplifiers of `crossbar::sense`),
//!   both behind the networks' `MatrixOperator`.
//!
//! Equilibrium propagation, analog SGD, the metaplastic BNN and inference deployment hold
//! their weights here. Not yet unified: `deploy`'s layers implement `nn::MatrixOperator`
//! rather than `SynapticLayer`, and the device-sampled weights of `bayes::bnn` have their
//! own mapping.

pub mod analog;
pub mod layer;
pub mod pairs;
pub mod sensed;
pub mod tile;

pub use analog::{AnalogSynapses, InputScaling};
pub use layer::{DigitalSynapses, OuterProductUpdate, PlasticSynapses, SynapticLayer};
pub use pairs::{BinarySynapses, WriteTally};
pub use sensed::SensedSynapses;
pub use tile::{CrossbarSynapses, program_layers};
