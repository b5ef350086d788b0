//! Binary weights stored on 2T2R device pairs (Hirtzlin et al., Frontiers in Neuroscience
//! 2020): each synapse is two cells of a device preset, `+1` with the "plus" cell in its
//! low-resistance state (LRS) and the "minus" cell in its high-resistance state (HRS), `−1`
//! the other way round. A sense amplifier reads the weight by comparing the two
//! conductances, so the stored bit is `G_plus > G_minus`; it differs from the intended
//! sign when a cell is stuck or the LRS and HRS distributions overlap.
//!
//! A sign flip of the hidden weight is a programming event: both cells of the pair are
//! re-programmed with [`Device::program_binary`] (one SET, one RESET), whose
//! [`WriteReport`]s give the pulses, energy and time of the write.

use crate::device::{AnyDevice, AnyState, Device, WriteReport};
use crate::rng::XbarRng;
use serde::{Deserialize, Serialize};
use std::ops::AddAssign;

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
