//! Binary weights stored on 2T2R device pairs (Hirtzlin et al., Frontiers in Neuroscience
//! 2020): each synapse is two cells of a device preset, `+1` with the "plus" cell in its
//! low-resistance state (LRS) and the "minus" cell in its high-resistance state (HRS), `−1`
//! the other way round. A sense amplifier reads the weight by comparing the two
//! conductances, so the stored bit is `G_plus > G_minus`; it differs from the intended
//! sign when a cell is stuck or the LRS and HRS distributions overlap.
//!
//! [`BinarySynapses`] is a layer of such pairs behind the learning-rule API
//! ([`PlasticSynapses`]): it reads its ±1 weights forwards and transposed, and carries out
//! a proposed change `ΔW` by re-binarising, `W ← sign(W + ΔW)`. Only the pairs whose sign
//! changes are re-programmed, each with [`Device::program_binary`] on both cells (one SET,
//! one RESET), whose [`WriteReport`]s give the pulses, energy and time of the write.

use super::layer::{OuterProductUpdate, PlasticSynapses, SynapticLayer};
use crate::device::{AnyDevice, AnyState, Device, WriteReport};
use crate::linalg;
use crate::rng::{self, XbarRng};
use anyhow::{Result, ensure};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::ops::AddAssign;

/// Synapses per parallel work item of fabrication and programming (fixed, so the device
/// random streams do not depend on the thread count).
const WRITE_CHUNK: usize = 8192;
/// Write-stream name of the initial programming of the arrays.
const INITIAL_WRITE: u64 = u64::MAX;
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
    fn record(&mut self, r: WriteReport) {
        self.pulses += u64::from(r.pulses);
        self.energy_j += r.energy_j;
        self.pulse_time_s += r.time_s;
    }
}

/// The binary weight of a real value: `+1` for `w ≥ 0`, else `−1`.
#[inline]
pub fn binary_weight(w: f32) -> f32 {
    if w >= 0.0 { 1.0 } else { -1.0 }
}

/// `+1` for a set bit, `−1` otherwise.
fn bit_weight(bit: bool) -> f32 {
    if bit { 1.0 } else { -1.0 }
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

/// Program one 2T2R pair to `positive` (`+1`) or not (`−1`); returns the bit the pair
/// then stores as read by a sense amplifier (`true` = `+1`).
pub fn program_pair(
    device: &AnyDevice,
    plus: &mut AnyState,
    minus: &mut AnyState,
    positive: bool,
    tally: &mut WriteTally,
    rng: &mut XbarRng,
) -> bool {
    tally.synapse_writes += 1;
    tally.record(device.program_binary(plus, positive, rng));
    tally.record(device.program_binary(minus, !positive, rng));
    stored_bit(device, plus, minus)
}

/// The bit a pair stores: `G_plus > G_minus` right after programming (noise-free read).
pub fn stored_bit(device: &AnyDevice, plus: &AnyState, minus: &AnyState) -> bool {
    device.conductance_at(plus, 0.0) > device.conductance_at(minus, 0.0)
}

/// One layer of binary synapses (`outputs x inputs`) on 2T2R pairs of one device model.
///
/// The layer remembers the sign each pair was last programmed to (the write driver's
/// target) and computes with ±1 weights: those targets, or — with `device_bits` — the bits
/// the pairs actually store. Writes are tallied until [`BinarySynapses::take_writes`].
#[derive(Clone, Debug)]
pub struct BinarySynapses {
    inputs: usize,
    outputs: usize,
    /// Sign (±1) each pair was last programmed to, row-major.
    programmed: Vec<f32>,
    /// The ±1 weights reads use, row-major.
    weight: Vec<f32>,
    plus: Vec<AnyState>,
    minus: Vec<AnyState>,
    device: AnyDevice,
    device_bits: bool,
    seed: u64,
    layer: u64,
    write_stream: [u64; 2],
    pending: WriteTally,
}

impl BinarySynapses {
    /// Fabricate the pairs of a layer whose binary weights are `sign(initial)` (`initial`
    /// is `outputs x inputs`, row-major). The cells are drawn from the streams
    /// `(seed, [fabrication, layer, chunk])`; they hold the fabricated state until
    /// [`BinarySynapses::program_all`]. With `device_bits`, reads use the bits the pairs
    /// store after programming instead of the intended signs.
    pub fn fabricate(
        device: AnyDevice,
        inputs: usize,
        outputs: usize,
        initial: &[f32],
        device_bits: bool,
        seed: u64,
        layer: usize,
    ) -> Result<Self> {
        ensure!(
            inputs > 0 && outputs > 0,
            "a binary synapse layer needs at least one input and one output \
             (got {inputs} x {outputs})"
        );
        ensure!(
            initial.len() == inputs * outputs,
            "initial weights hold {} values, expected {outputs} outputs x {inputs} inputs",
            initial.len()
        );
        let (plus, minus) = fabricate_cells(&device, seed, layer, initial.len());
        Ok(BinarySynapses {
            inputs,
            outputs,
            programmed: initial.iter().map(|&w| binary_weight(w)).collect(),
            weight: initial.iter().map(|&w| binary_weight(w)).collect(),
            plus,
            minus,
            device,
            device_bits,
            seed,
            layer: layer as u64,
            write_stream: [0, 0],
            pending: WriteTally::default(),
        })
    }

    /// Program every pair to its binary weight (the initial write of the array), adding
    /// the cost of each chunk of synapses to `tally` in order.
    pub fn program_all(&mut self, tally: &mut WriteTally) {
        let (device, device_bits) = (&self.device, self.device_bits);
        let (seed, layer) = (self.seed, self.layer);
        let tallies: Vec<WriteTally> = self
            .programmed
            .par_chunks(WRITE_CHUNK)
            .zip(self.weight.par_chunks_mut(WRITE_CHUNK))
            .zip(self.plus.par_chunks_mut(WRITE_CHUNK))
            .zip(self.minus.par_chunks_mut(WRITE_CHUNK))
            .enumerate()
            .map(|(c, (((p, q), plus), minus))| {
                let path = [
                    rng::METAPLASTIC_PROGRAM_STREAM,
                    INITIAL_WRITE,
                    layer,
                    c as u64,
                ];
                let mut r = rng::stream(seed, &path);
                let mut t = WriteTally::default();
                for i in 0..p.len() {
                    let positive = p[i] > 0.0;
                    let bit = program_pair(
                        device,
                        &mut plus[i],
                        &mut minus[i],
                        positive,
                        &mut t,
                        &mut r,
                    );
                    if device_bits {
                        q[i] = bit_weight(bit);
                    }
                }
                t
            })
            .collect();
        tallies.into_iter().for_each(|t| *tally += t);
    }

    /// Name the device random streams of the next updates' writes, e.g. `[task, step]`:
    /// chunk `c` of the layer draws from `(seed, [programming, stream[0], stream[1],
    /// layer, c])`. Give every update its own name.
    pub fn set_write_stream(&mut self, stream: [u64; 2]) {
        self.write_stream = stream;
    }

    /// The writes (re-programmed pairs, pulses, energy, time) since the last call.
    pub fn take_writes(&mut self) -> WriteTally {
        std::mem::take(&mut self.pending)
    }

    /// The ±1 weights reads use (`outputs x inputs`, row-major).
    pub fn weights(&self) -> &[f32] {
        &self.weight
    }

    /// Fraction of pairs that store a bit other than the sign they were programmed to
    /// (stuck cells, overlapping LRS/HRS distributions).
    pub fn device_bit_error_rate(&self) -> f64 {
        let wrong = self
            .programmed
            .iter()
            .zip(self.plus.iter().zip(&self.minus))
            .filter(|(p, (plus, minus))| (**p > 0.0) != stored_bit(&self.device, plus, minus))
            .count();
        wrong as f64 / self.programmed.len() as f64
    }

    /// Forward read `y = x · Wᵀ` of a batch (`x`: `batch x inputs`, `y`: `batch x outputs`).
    pub fn read_forward(&self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        linalg::check_batch_shapes("forward read", x, y, batch, self.inputs, self.outputs)?;
        linalg::a_bt(x, &self.weight, batch, self.inputs, self.outputs, y);
        Ok(())
    }

    /// Transposed read `x = y · W` of a batch (`y`: `batch x outputs`, `x`: `batch x inputs`).
    pub fn read_transposed(&self, y: &[f32], batch: usize, x: &mut [f32]) -> Result<()> {
        linalg::check_batch_shapes("transposed read", y, x, batch, self.outputs, self.inputs)?;
        linalg::a_b(y, &self.weight, batch, self.outputs, self.inputs, x);
        Ok(())
    }
}

impl SynapticLayer for BinarySynapses {
    fn inputs(&self) -> usize {
        self.inputs
    }

    fn outputs(&self) -> usize {
        self.outputs
    }

    fn forward(&mut self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        self.read_forward(x, batch, y)
    }

    fn transposed(&mut self, y: &[f32], batch: usize, x: &mut [f32]) -> Result<()> {
        self.read_transposed(y, batch, x)
    }

    /// Re-binarise `W + ΔW` for the outer product's `ΔW` (see [`PlasticSynapses`]).
    fn apply_update(&mut self, update: &OuterProductUpdate) -> Result<()> {
        ensure!(
            update.rows > 0
                && update.post.len() == update.rows * self.outputs
                && update.pre.len() == update.rows * self.inputs,
            "outer-product update of {} rows ({} post, {} pre values) does not fit a {} x {} \
             binary layer",
            update.rows,
            update.post.len(),
            update.pre.len(),
            self.outputs,
            self.inputs
        );
        self.apply_dense(&update.dense())
    }
}

impl PlasticSynapses for BinarySynapses {
    /// `W ← sign(W + ΔW)` with `W` the programmed ±1 signs (`sign(0) = +1`): a pair is
    /// re-programmed exactly when its sign changes, e.g. for `ΔW = ±2` where a rule flips
    /// a weight and 0 elsewhere. Chunk `c` of the layer draws its programming noise from
    /// the stream named by [`BinarySynapses::set_write_stream`].
    fn apply_dense(&mut self, delta_w: &[f32]) -> Result<()> {
        ensure!(
            delta_w.len() == self.programmed.len(),
            "dense update holds {} values, the binary layer has {} x {} weights",
            delta_w.len(),
            self.outputs,
            self.inputs
        );
        ensure!(
            delta_w.iter().fold(true, |ok, d| ok & d.is_finite()),
            "dense update of a binary layer holds a non-finite value"
        );
        let (device, device_bits) = (&self.device, self.device_bits);
        let (seed, layer, stream) = (self.seed, self.layer, self.write_stream);
        let tallies: Vec<WriteTally> = self
            .programmed
            .par_chunks_mut(WRITE_CHUNK)
            .zip(delta_w.par_chunks(WRITE_CHUNK))
            .zip(self.weight.par_chunks_mut(WRITE_CHUNK))
            .zip(self.plus.par_chunks_mut(WRITE_CHUNK))
            .zip(self.minus.par_chunks_mut(WRITE_CHUNK))
            .enumerate()
            .map(|(c, ((((p, d), q), plus), minus))| {
                let mut tally = WriteTally::default();
                let mut r = None;
                for (start, (pb, db)) in (0..)
                    .step_by(SCAN_BLOCK)
                    .zip(p.chunks_mut(SCAN_BLOCK).zip(d.chunks(SCAN_BLOCK)))
                {
                    if count_flips(pb, db) == 0 {
                        continue;
                    }
                    for (i, (w, &dw)) in (start..).zip(pb.iter_mut().zip(db)) {
                        if !flips(*w, dw) {
                            continue;
                        }
                        *w = -*w;
                        let after = *w > 0.0;
                        let path = [
                            rng::METAPLASTIC_PROGRAM_STREAM,
                            stream[0],
                            stream[1],
                            layer,
                            c as u64,
                        ];
                        let r = r.get_or_insert_with(|| rng::stream(seed, &path));
                        let bit =
                            program_pair(device, &mut plus[i], &mut minus[i], after, &mut tally, r);
                        q[i] = bit_weight(if device_bits { bit } else { after });
                    }
                }
                tally
            })
            .collect();
        tallies.into_iter().for_each(|t| self.pending += t);
        Ok(())
    }
}

/// Fabricate the plus and minus cells of `count` synapses of layer `layer`, chunk by chunk
/// from streams `(seed, [METAPLASTIC_FABRICATION_STREAM, layer, chunk])`.
fn fabricate_cells(
    device: &AnyDevice,
    seed: u64,
    layer: usize,
    count: usize,
) -> (Vec<AnyState>, Vec<AnyState>) {
    let chunks: Vec<(Vec<AnyState>, Vec<AnyState>)> = (0..count.div_ceil(WRITE_CHUNK))
        .into_par_iter()
        .map(|c| {
            let len = WRITE_CHUNK.min(count - c * WRITE_CHUNK);
            let mut r = rng::stream(
                seed,
                &[rng::METAPLASTIC_FABRICATION_STREAM, layer as u64, c as u64],
            );
            (0..len)
                .map(|_| (device.fabricate(&mut r), device.fabricate(&mut r)))
                .unzip()
        })
        .collect();
    let mut plus = Vec::with_capacity(count);
    let mut minus = Vec::with_capacity(count);
    for (p, m) in chunks {
        plus.extend(p);
        minus.extend(m);
    }
    (plus, minus)
}
