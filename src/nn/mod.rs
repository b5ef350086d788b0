//! Neural networks: the digital reference MLP, binary and ternary networks, deployment on
//! crossbar tiles.
//!
//! - [`mlp`] / [`backprop`]: a multilayer perceptron trained by backpropagation (SGD with
//!   momentum or Adam, mini-batches, optional hardware-aware weight noise), bit-identical
//!   for any thread count;
//! - [`network`]: the generic [`Network`] whose matrix products are the forward reads of
//!   any [`crate::synapses::SynapticLayer`] (digital weights or crossbar tiles), and
//!   [`evaluate`];
//! - [`sequential`]: networks described as a PyTorch-style layer list (convolutions,
//!   pooling, linear layers, binary and ternary layers) whose weighted layers read through
//!   the synapse seam;
//! - [`deploy`]: a trained network programmed on tiles of a device and measured
//!   (accuracy, weight error, sense bit errors, read energy);
//! - [`binary`]: binary and ternary networks trained with the straight-through
//!   estimator, folded into ±1 / −1,0,+1 matrices and per-neuron thresholds, with a
//!   bit-error hook;
//! - [`weights`]: weight directories of `.npy` files (read and written by
//!   [`crate::npy`]) in PyTorch `nn.Linear` layout (save, load, import from NumPy).

pub mod backprop;
pub mod binary;
pub mod deploy;
pub mod mlp;
pub mod network;
pub mod noise;
pub mod optim;
pub mod sequential;
pub mod weights;

pub use backprop::{EpochReport, Schedule, TrainConfig, TrainReport, train};
pub use binary::{
    InputEncoding, Quantization, QuantizedMatrix, QuantizedMlp, inject_bit_errors, train_quantized,
};
pub use deploy::{DeployedPart, DeployedSynapses, Deployment, Outcome};
pub use mlp::{Dense, DenseGradient, Mlp};
pub use network::{Classifier, Layer, Network, Neuron, evaluate};
pub use noise::{NoiseKind, WeightNoise};
pub use optim::Optimizer;
pub use weights::{load_mlp, save_mlp};
