//! On-chip learning rules: equilibrium propagation, metaplastic binarized networks, pulsed analog SGD.

pub mod ep;
pub mod metaplastic;
pub mod rule;
pub mod sgd;
