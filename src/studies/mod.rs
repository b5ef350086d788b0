//! Studies: what an experiment file names. Each study holds a configuration with preset and
//! data names, the driver that turns the names into devices and data sets and runs the
//! library, and its figures. The library layers below (devices, crossbar, networks,
//! learning rules, Bayesian models) take built objects and never load presets by name,
//! write result files or draw.

pub mod analog_sgd;
pub mod characterize;
pub mod metaplastic_pmnist;
