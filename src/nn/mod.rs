//! Neural networks: the digital reference MLP, binary and ternary networks, analog deployment.
//!
//! - [`mlp`] / [`backprop`]: a multilayer perceptron trained by backpropagation (SGD with
//!   momentum or Adam, mini-batches, optional hardware-aware weight noise), bit-identical
//!   for any thread count;
//! - [`operator`]: the [`MatrixOperator`] seam where crossbar tiles replace the digital
//!   matrix products, the generic [`Network`] and [`evaluate`];
//! - [`binary`]: binary and ternary networks trained with the straight-through
//!   estimator, folded into ±1 / −1,0,+1 matrices and per-neuron thresholds, with a
//!   bit-error hook;
//! - [`npy`] / [`weights`]: `.npy` files and weight directories in PyTorch `nn.Linear`
//!   layout (save, load, import from NumPy).

pub mod backprop;
pub mod binary;
pub mod mlp;
pub mod noise;
pub mod npy;
pub mod operator;
pub mod optim;
pub mod weights;

pub use backprop::{EpochReport, TrainConfig, TrainReport, train};
pub use binary::{
    InputEncoding, Quantization, QuantizedMatrix, QuantizedMlp, inject_bit_errors, train_quantized,
};
pub use mlp::{Dense, DenseGradient, Mlp};
pub use noise::{NoiseKind, WeightNoise};
pub use operator::{Classifier, Layer, MatrixOperator, Network, Neuron, evaluate};
pub use optim::Optimizer;
pub use weights::{load_mlp, save_mlp};
