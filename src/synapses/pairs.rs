//! Binary weights stored on 2T2R device pairs of crossbar tiles (Hirtzlin et al., Frontiers
//! in Neuroscience 2020), trained on chip: each synapse is two cells, `+1` with the "plus"
//! cell in its low-resistance state (LRS) and the "minus" cell in its high-resistance
//! state (HRS), `−1` the other way round, in a [`TiledMatrix`] with
//! `mapping.encoding = "binary"` — the same arrays, programming and precharge sense
//! amplifiers (offset, read noise, dead lines, energy ledger) as the `bnn_2t2r` inference
//! experiment (`crate::crossbar::sense`).
//!
//! [`BinarySynapses`] is a layer of such pairs behind the learning-rule API
//! ([`PlasticSynapses`]):
//! - a forward read senses every pair once (fresh read noise and offsets, one sensing in
//!   the ledger) and multiplies the input batch by the sensed ±1 weights; all vectors of a
//!   batch see the same sensing, as in [`crate::crossbar::Tile::forward_sensed_batch`];
//! - a transposed read (the error back-propagated through the layer in the same training
//!   step) uses the bits latched by the last forward read, so one training step senses the
//!   array once;
//! - a proposed change `ΔW` is carried out by re-binarising, `W ← sign(W + ΔW)`: only the
//!   pairs whose sign changes are re-programmed ([`TiledMatrix::reprogram`], by the tile's
//!   programming method), and their [`WriteReport`](crate::device::WriteReport)s give the
//!   pulses, energy and time of the writes.
//!
//! The layer remembers the sign each pair was last programmed to (the write driver's
//! target); the bit-error rate is the fraction of sensed bits that differ from it (stuck
//! cells, overlapping LRS/HRS distributions, sense-amplifier offset and read noise).

use super::layer::{OuterProductUpdate, PlasticSynapses, SynapticLayer, check_update_shape};
use crate::crossbar::{
    EnergyBreakdown, ProgramReport, TileConfig, TiledMatrix, WeightEncoding, WeightWrite,
};
use crate::device::AnyDevice;
use crate::linalg;
use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};
use std::ops::AddAssign;

/// Synapses per block of the sign-change scan: blocks without a sign change are skipped
/// after one branch-free (vectorised) pass.
const SCAN_BLOCK: usize = 64;

/// Programming activity on 2T2R binary-weight arrays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WriteTally {
    /// Synapses re-programmed (sign flips of the hidden weight, or initial programming).
    pub synapse_writes: u64,
    /// Programming pulses applied to cells (two per synapse write).
    pub pulses: u64,
    /// Energy dissipated in the cells by the programming pulses, joules.
    pub energy_j: f64,
    /// Summed pulse time, seconds (serial programming time of one write driver).
    pub pulse_time_s: f64,
}

impl AddAssign for WriteTally {
    fn add_assign(&mut self, o: WriteTally) {
        self.synapse_writes += o.synapse_writes;
        self.pulses += o.pulses;
        self.energy_j += o.energy_j;
        self.pulse_time_s += o.pulse_time_s;
    }
}

impl WriteTally {
    /// Add the cost of a programming operation on `report.devices / 2` synapses.
    fn record(&mut self, report: &ProgramReport) {
        self.synapse_writes += (report.devices / 2) as u64;
        self.pulses += u64::from(report.write.pulses);
        self.energy_j += report.write.energy_j;
        self.pulse_time_s += report.write.time_s;
    }
}

/// The binary weight of a real value: `+1` for `w ≥ 0`, else `−1`.
#[inline]
pub fn binary_weight(w: f32) -> f32 {
    if w >= 0.0 { 1.0 } else { -1.0 }
}

/// Whether the ±1 weight `w` changes sign under the change `dw` (`sign(0) = +1`).
#[inline]
fn flips(w: f32, dw: f32) -> bool {
    (w + dw >= 0.0) != (w >= 0.0)
}

/// Number of sign changes in a block, branch-free so that it vectorises.
fn count_flips(w: &[f32], dw: &[f32]) -> u32 {
    w.iter()
        .zip(dw)
        .map(|(&w, &dw)| u32::from(flips(w, dw)))
        .sum()
}

/// One layer of binary synapses (`outputs x inputs`) on 2T2R pairs of crossbar tiles.
pub struct BinarySynapses {
    matrix: TiledMatrix<AnyDevice>,
    /// Sign (±1) each pair was last programmed to, row-major `outputs x inputs`.
    programmed: Vec<f32>,
    /// The ±1 weights of the last sensing (empty before the first forward read).
    sensed: Vec<f32>,
    bit_errors: u64,
    bits_sensed: u64,
    pending: WriteTally,
}

impl BinarySynapses {
    /// Fabricate the tiles of a layer whose binary weights are `sign(initial)` (`initial`
    /// is `outputs x inputs`, row-major) on `device` cells; `tile` must have
    /// `mapping.encoding = "binary"`. The tiles draw every random number (fabrication,
    /// programming, sensing) from streams under the key `seed`; they hold the fabricated
    /// state until [`BinarySynapses::program_all`].
    pub fn fabricate(
        device: AnyDevice,
        inputs: usize,
        outputs: usize,
        initial: &[f32],
        tile: TileConfig,
        seed: u64,
    ) -> Result<Self> {
        ensure!(
            initial.len() == inputs * outputs,
            "initial weights hold {} values, expected {outputs} outputs x {inputs} inputs",
            initial.len()
        );
        ensure!(
            tile.mapping.encoding == WeightEncoding::Binary && tile.mapping.bit_slicing.is_none(),
            "binary synapses need tile.mapping.encoding = \"binary\" without bit slicing"
        );
        let matrix = TiledMatrix::new(device, inputs, outputs, tile, seed)
            .context("fabricating the 2T2R tiles of a binary layer")?;
        Ok(BinarySynapses {
            matrix,
            programmed: initial.iter().map(|&w| binary_weight(w)).collect(),
            sensed: Vec::new(),
            bit_errors: 0,
            bits_sensed: 0,
            pending: WriteTally::default(),
        })
    }

    /// Program every pair to its binary weight (the initial write of the arrays), adding
    /// the cost to `tally`.
    pub fn program_all(&mut self, tally: &mut WriteTally) -> Result<()> {
        let weights: Vec<f64> = self.programmed.iter().map(|&w| f64::from(w)).collect();
        let report = self.matrix.program(&weights)?;
        tally.record(&report);
        Ok(())
    }

    /// The writes (re-programmed pairs, pulses, energy, time) since the last call.
    pub fn take_writes(&mut self) -> WriteTally {
        std::mem::take(&mut self.pending)
    }

    /// The sign (±1) each pair was last programmed to (`outputs x inputs`, row-major).
    pub fn weights(&self) -> &[f32] {
        &self.programmed
    }

    /// The ±1 weights of the last sensing (`outputs x inputs`, row-major; empty before the
    /// first forward read).
    pub fn sensed_weights(&self) -> &[f32] {
        &self.sensed
    }

    /// Fraction of the bits sensed so far that differ from the sign their pair was last
    /// programmed to (0 before the first read).
    pub fn bit_error_rate(&self) -> f64 {
        self.bit_errors as f64 / self.bits_sensed.max(1) as f64
    }

    /// Cumulative energy and latency of the layer's tiles: programming and sensing.
    pub fn energy(&self) -> EnergyBreakdown {
        self.matrix.total_energy()
    }

    /// Sense every pair once; latch the ±1 weights and count the bit errors.
    fn sense(&mut self) -> Result<()> {
        let bits = self.matrix.sense_weights()?;
        self.sensed.clear();
        self.sensed.extend(bits.iter().map(|&b| f32::from(b)));
        let errors = self
            .sensed
            .iter()
            .zip(&self.programmed)
            .filter(|(s, p)| s != p)
            .count();
        self.bit_errors += errors as u64;
        self.bits_sensed += bits.len() as u64;
        Ok(())
    }
}

impl SynapticLayer for BinarySynapses {
    fn inputs(&self) -> usize {
        self.matrix.n_in()
    }

    fn outputs(&self) -> usize {
        self.matrix.n_out()
    }

    /// Sense the array, then `y = x · Sᵀ` with the sensed ±1 weights `S`.
    fn forward(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        let (inputs, outputs) = (self.inputs(), self.outputs());
        linalg::check_batch_shapes("forward read", x, y, batch, inputs, outputs)?;
        self.sense()?;
        linalg::a_bt(x, &self.sensed, batch, inputs, outputs, y);
        Ok(())
    }

    /// `x = y · S` with the weights latched by the last forward read.
    fn transposed(&mut self, y: &[f32], batch: usize, x: &mut [f32]) -> Result<()> {
        let (inputs, outputs) = (self.inputs(), self.outputs());
        linalg::check_batch_shapes("transposed read", y, x, batch, outputs, inputs)?;
        ensure!(
            !self.sensed.is_empty(),
            "a transposed read of binary synapses uses the bits latched by the last forward \
             read: read forward first"
        );
        linalg::a_b(y, &self.sensed, batch, outputs, inputs, x);
        Ok(())
    }
}

impl PlasticSynapses for BinarySynapses {
    /// Re-binarise `W + ΔW` for the outer product's `ΔW` (see `apply_dense`).
    fn apply_update(&mut self, update: &OuterProductUpdate) -> Result<()> {
        check_update_shape(update, self.outputs(), self.inputs(), "binary layer")?;
        self.apply_dense(&update.dense())
    }

    /// `W ← sign(W + ΔW)` with `W` the programmed ±1 signs (`sign(0) = +1`): a pair is
    /// re-programmed exactly when its sign changes, e.g. for `ΔW = ±2` where a rule flips
    /// a weight and 0 elsewhere.
    fn apply_dense(&mut self, delta_w: &[f32]) -> Result<()> {
        ensure!(
            delta_w.len() == self.programmed.len(),
            "dense update holds {} values, the binary layer has {} x {} weights",
            delta_w.len(),
            self.outputs(),
            self.inputs()
        );
        ensure!(
            delta_w.iter().fold(true, |ok, d| ok & d.is_finite()),
            "dense update of a binary layer holds a non-finite value"
        );
        let inputs = self.inputs();
        let mut writes = Vec::new();
        for (start, (pb, db)) in (0..).step_by(SCAN_BLOCK).zip(
            self.programmed
                .chunks_mut(SCAN_BLOCK)
                .zip(delta_w.chunks(SCAN_BLOCK)),
        ) {
            if count_flips(pb, db) == 0 {
                continue;
            }
            for (i, (w, &dw)) in (start..).zip(pb.iter_mut().zip(db)) {
                if flips(*w, dw) {
                    *w = -*w;
                    writes.push(WeightWrite {
                        output: i / inputs,
                        input: i % inputs,
                        weight: f64::from(*w),
                    });
                }
            }
        }
        if !writes.is_empty() {
            let report = self.matrix.reprogram(&writes)?;
            self.pending.record(&report);
        }
        Ok(())
    }
}
