//! Crossbar arrays: analog matrix-vector products on device conductances.
//!
//! A [`Tile`] is one physical array of device pairs with its periphery: it maps a weight
//! matrix onto conductances ([`mapping`]), programs them open loop or by write-verify,
//! and computes y = W x (forward) or y = W^T x (transposed) through DACs, the array
//! (device read noise, drift, faults), output noise and ADCs ([`periphery`], [`read`]).
//! [`TiledMatrix`] splits larger matrices over tiles with digital accumulation, [`energy`]
//! keeps the energy and latency ledger, [`sense`] reads 2T2R binary/ternary arrays with
//! precharge sense amplifiers, [`reprogram`] re-writes selected pairs of a programmed
//! tile, and [`ir_drop`] solves the resistive wire network.
//! Everything a tile does is described by one [`TileConfig`].

pub mod config;
pub mod energy;
pub mod ir_drop;
mod kernels;
pub mod mapping;
pub mod normal;
pub mod periphery;
pub mod read;
pub mod reprogram;
pub mod sense;
pub mod tile;
pub mod tiled;
pub mod update;

pub use config::{
    AdcConfig, AdcRange, BitSlicing, FaultConfig, MappingConfig, PeripheryConfig,
    ProgrammingConfig, ProgrammingMethod, SenseAmpConfig, TileConfig, VerifyCorrection,
    WeightEncoding, WireConfig,
};
pub use energy::{EnergyBreakdown, EnergyConfig, EnergyLedger};
pub use read::TileRead;
pub use reprogram::WeightWrite;
pub use tile::{Direction, ProgramReport, Tile};
pub use tiled::{MatrixRead, TiledMatrix};
