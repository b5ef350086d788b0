//! Run-time choice of device model: [`AnyDevice`] wraps every model behind one type, so an
//! experiment can pick its device from a preset name or file.

use super::ideal::{Ideal, IdealState};
use super::mram::{Mram, MramState};
use super::pcm::{Pcm, PcmState};
use super::pulsed::{PulsedDevice, PulsedState};
use super::rram::{Rram, RramState};
use super::{Device, Polarity, Pulse, PulseReport, StuckAt, WriteReport};
use rand::Rng;

/// Any device model.
#[derive(Clone, Debug, PartialEq)]
pub enum AnyDevice {
    /// Noise-free linear device.
    Ideal(Ideal),
    /// Filamentary RRAM.
    Rram(Rram),
    /// Phase-change memory.
    Pcm(Pcm),
    /// STT magnetic tunnel junction.
    Mram(Mram),
    /// Pulsed analog device of one of aihwkit's step-model families.
    Pulsed(PulsedDevice),
}

/// One cell of an [`AnyDevice`]; its variant always matches the device's.
#[derive(Clone, Debug, PartialEq)]
pub enum AnyState {
    /// Cell of an ideal device.
    Ideal(IdealState),
    /// Cell of an RRAM device.
    Rram(RramState),
    /// Cell of a PCM device.
    Pcm(PcmState),
    /// Cell of an MTJ.
    Mram(MramState),
    /// Cell of a pulsed step-model device.
    Pulsed(PulsedState),
}

/// A state was passed to a device of another model: a programming error, not a user error.
fn mismatch() -> ! {
    panic!("AnyState variant does not match its AnyDevice (a state must come from its own model)")
}

/// Call `$body` with the concrete model `$d` and state `$s` of matching variants.
macro_rules! dispatch {
    ($dev:expr, $state:expr, |$d:ident, $s:ident| $body:expr) => {
        match ($dev, $state) {
            (AnyDevice::Ideal($d), AnyState::Ideal($s)) => $body,
            (AnyDevice::Rram($d), AnyState::Rram($s)) => $body,
            (AnyDevice::Pcm($d), AnyState::Pcm($s)) => $body,
            (AnyDevice::Mram($d), AnyState::Mram($s)) => $body,
            (AnyDevice::Pulsed($d), AnyState::Pulsed($s)) => $body,
            _ => mismatch(),
        }
    };
}

impl AnyDevice {
    /// Model name as written in preset files: `ideal`, `rram`, `pcm`, `mram` or the step
    /// family of a pulsed device (`constant_step`, `soft_bounds`, ...).
    pub fn model_name(&self) -> &'static str {
        match self {
            AnyDevice::Ideal(_) => "ideal",
            AnyDevice::Rram(_) => "rram",
            AnyDevice::Pcm(_) => "pcm",
            AnyDevice::Mram(_) => "mram",
            AnyDevice::Pulsed(d) => d.family.name(),
        }
    }

    /// Analytic probability that `pulse` switches `state`, for models with stochastic
    /// switching events (RRAM, MRAM); `None` for the others.
    pub fn switching_probability(&self, state: &AnyState, pulse: &Pulse) -> Option<f64> {
        match (self, state) {
            (AnyDevice::Rram(d), AnyState::Rram(s)) => Some(d.cell_switching_probability(s, pulse)),
            (AnyDevice::Mram(d), AnyState::Mram(s)) => Some(d.switching_probability(s, pulse)),
            (AnyDevice::Ideal(_), AnyState::Ideal(_))
            | (AnyDevice::Pcm(_), AnyState::Pcm(_))
            | (AnyDevice::Pulsed(_), AnyState::Pulsed(_)) => None,
            _ => mismatch(),
        }
    }

    /// Whether the model has stochastic switching events with an analytic probability.
    pub fn has_stochastic_switching(&self) -> bool {
        matches!(self, AnyDevice::Rram(_) | AnyDevice::Mram(_))
    }

    /// Whether the conductance drifts with time after programming.
    pub fn drifts(&self) -> bool {
        match self {
            AnyDevice::Pcm(_) => true,
            AnyDevice::Pulsed(d) => d.params.drift_nu > 0.0,
            _ => false,
        }
    }

    /// Whether the device stores analog levels (MRAM is binary).
    pub fn is_analog(&self) -> bool {
        !matches!(self, AnyDevice::Mram(_))
    }

    /// Whether the model has its own binary (LRS/HRS) distributions.
    pub fn has_binary_mode(&self) -> bool {
        matches!(self, AnyDevice::Rram(_) | AnyDevice::Mram(_))
    }

    /// Number of nominal pulses that take a nominal device across its window (for a pulse
    /// train): the level count, the pulses to reach ~95 % of the PCM SET saturation, or the
    /// nominal steps across a pulsed device's window.
    pub fn pulses_across_window(&self) -> u32 {
        match self {
            AnyDevice::Ideal(d) => d.params.levels,
            AnyDevice::Rram(d) => d.params.levels_ltp.max(d.params.levels_ltd),
            AnyDevice::Pcm(d) => {
                let p = &d.params;
                let fraction = (p.set_step_mean_s / p.g_max_s).clamp(1e-6, 0.999);
                // Mean response G_n = G_max (1 - (1 - f)^n): 95 % after ln(0.05)/ln(1 - f).
                ((0.05f64).ln() / (1.0 - fraction).ln())
                    .ceil()
                    .clamp(1.0, 10_000.0) as u32
            }
            AnyDevice::Mram(_) => 1,
            AnyDevice::Pulsed(d) => d.pulses_across_window(),
        }
    }
}

impl Device for AnyDevice {
    type State = AnyState;

    fn fabricate<R: Rng + ?Sized>(&self, rng: &mut R) -> AnyState {
        match self {
            AnyDevice::Ideal(d) => AnyState::Ideal(d.fabricate(rng)),
            AnyDevice::Rram(d) => AnyState::Rram(d.fabricate(rng)),
            AnyDevice::Pcm(d) => AnyState::Pcm(d.fabricate(rng)),
            AnyDevice::Mram(d) => AnyState::Mram(d.fabricate(rng)),
            AnyDevice::Pulsed(d) => AnyState::Pulsed(d.fabricate(rng)),
        }
    }

    fn program<R: Rng + ?Sized>(
        &self,
        state: &mut AnyState,
        g_target_s: f64,
        rng: &mut R,
    ) -> WriteReport {
        dispatch!(self, state, |d, s| d.program(s, g_target_s, rng))
    }

    fn program_binary<R: Rng + ?Sized>(
        &self,
        state: &mut AnyState,
        high: bool,
        rng: &mut R,
    ) -> WriteReport {
        dispatch!(self, state, |d, s| d.program_binary(s, high, rng))
    }

    fn apply_pulse<R: Rng + ?Sized>(
        &self,
        state: &mut AnyState,
        pulse: &Pulse,
        rng: &mut R,
    ) -> PulseReport {
        dispatch!(self, state, |d, s| d.apply_pulse(s, pulse, rng))
    }

    fn nominal_pulse(&self, polarity: Polarity) -> Pulse {
        match self {
            AnyDevice::Ideal(d) => d.nominal_pulse(polarity),
            AnyDevice::Rram(d) => d.nominal_pulse(polarity),
            AnyDevice::Pcm(d) => d.nominal_pulse(polarity),
            AnyDevice::Mram(d) => d.nominal_pulse(polarity),
            AnyDevice::Pulsed(d) => d.nominal_pulse(polarity),
        }
    }

    fn declared_step_s(&self) -> Option<f64> {
        match self {
            AnyDevice::Pulsed(d) => d.declared_step_s(),
            AnyDevice::Ideal(_) | AnyDevice::Rram(_) | AnyDevice::Pcm(_) | AnyDevice::Mram(_) => {
                None
            }
        }
    }

    fn window_levels(&self, polarity: Polarity) -> Option<f64> {
        match self {
            AnyDevice::Rram(d) => d.window_levels(polarity),
            AnyDevice::Ideal(_) | AnyDevice::Pulsed(_) | AnyDevice::Pcm(_) | AnyDevice::Mram(_) => {
                None
            }
        }
    }

    fn evolves_per_update(&self) -> bool {
        match self {
            AnyDevice::Pulsed(d) => d.evolves_per_update(),
            AnyDevice::Ideal(_) | AnyDevice::Rram(_) | AnyDevice::Pcm(_) | AnyDevice::Mram(_) => {
                false
            }
        }
    }

    fn after_update<R: Rng + ?Sized>(&self, state: &mut AnyState, rng: &mut R) {
        dispatch!(self, state, |d, s| d.after_update(s, rng))
    }

    fn conductance_at(&self, state: &AnyState, t_s: f64) -> f64 {
        dispatch!(self, state, |d, s| d.conductance_at(s, t_s))
    }

    fn read_noise_sigma(&self, state: &AnyState, t_s: f64) -> f64 {
        dispatch!(self, state, |d, s| d.read_noise_sigma(s, t_s))
    }

    fn read<R: Rng + ?Sized>(&self, state: &mut AnyState, t_s: f64, rng: &mut R) -> f64 {
        dispatch!(self, state, |d, s| d.read(s, t_s, rng))
    }

    fn g_window(&self, state: &AnyState) -> (f64, f64) {
        dispatch!(self, state, |d, s| d.g_window(s))
    }

    fn nominal_window(&self) -> (f64, f64) {
        match self {
            AnyDevice::Ideal(d) => d.nominal_window(),
            AnyDevice::Rram(d) => d.nominal_window(),
            AnyDevice::Pcm(d) => d.nominal_window(),
            AnyDevice::Mram(d) => d.nominal_window(),
            AnyDevice::Pulsed(d) => d.nominal_window(),
        }
    }

    fn set_stuck(&self, state: &mut AnyState, stuck: Option<StuckAt>) {
        dispatch!(self, state, |d, s| d.set_stuck(s, stuck))
    }
}
