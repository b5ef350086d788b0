//! The ideal device: exact, noise-free, linear. Every experiment's digital twin.

use super::cell;
use super::params::{ParamError, at_least_one, non_negative, ordered, positive};
use super::{Device, Polarity, Pulse, PulseReport, StuckAt, WriteReport};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Parameters of the ideal device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdealParams {
    /// Lowest conductance, siemens.
    pub g_min_s: f64,
    /// Highest conductance, siemens.
    pub g_max_s: f64,
    /// Number of equal conductance steps from `g_min_s` to `g_max_s` made by nominal pulses.
    pub levels: u32,
    /// Amplitude of the nominal programming pulse, volts (for energy accounting).
    pub pulse_amplitude_v: f64,
    /// Width of the nominal programming pulse, seconds.
    pub pulse_width_s: f64,
}

impl IdealParams {
    /// Check every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ParamError> {
        non_negative("g_min_s", self.g_min_s)?;
        positive("g_max_s", self.g_max_s)?;
        ordered("g_min_s", self.g_min_s, "g_max_s", self.g_max_s)?;
        at_least_one("levels", self.levels)?;
        positive("pulse_amplitude_v", self.pulse_amplitude_v)?;
        positive("pulse_width_s", self.pulse_width_s)
    }
}

/// The ideal device model.
#[derive(Clone, Debug, PartialEq)]
pub struct Ideal {
    /// The model's parameters.
    pub params: IdealParams,
}

/// One ideal cell.
#[derive(Clone, Debug, PartialEq)]
pub struct IdealState {
    /// Present conductance, siemens.
    pub g_s: f64,
    /// Stuck-at fault, if any.
    pub stuck: Option<StuckAt>,
}

impl Ideal {
    /// A model with these (already validated) parameters.
    pub fn new(params: IdealParams) -> Self {
        Self { params }
    }

    fn step_s(&self) -> f64 {
        (self.params.g_max_s - self.params.g_min_s) / f64::from(self.params.levels)
    }

    fn stuck_conductance(&self, stuck: StuckAt) -> f64 {
        match stuck {
            StuckAt::Lrs => self.params.g_max_s,
            StuckAt::Hrs => self.params.g_min_s,
        }
    }
}

impl Device for Ideal {
    type State = IdealState;

    fn fabricate<R: Rng + ?Sized>(&self, _rng: &mut R) -> IdealState {
        IdealState {
            g_s: self.params.g_min_s,
            stuck: None,
        }
    }

    fn program<R: Rng + ?Sized>(
        &self,
        state: &mut IdealState,
        g_target_s: f64,
        _rng: &mut R,
    ) -> WriteReport {
        if state.stuck.is_none() {
            state.g_s = g_target_s.clamp(self.params.g_min_s, self.params.g_max_s);
        }
        let pulse = self.nominal_pulse(Polarity::Set);
        cell::one_pulse_write(&pulse, cell::joule_energy_j(&pulse, state.g_s))
    }

    fn apply_pulse<R: Rng + ?Sized>(
        &self,
        state: &mut IdealState,
        pulse: &Pulse,
        _rng: &mut R,
    ) -> PulseReport {
        let energy_j = cell::joule_energy_j(pulse, state.g_s);
        if state.stuck.is_some() {
            return PulseReport {
                switched: false,
                energy_j,
            };
        }
        let before = state.g_s;
        let step = match pulse.polarity {
            Polarity::Set => self.step_s(),
            Polarity::Reset => -self.step_s(),
        };
        state.g_s = (state.g_s + step).clamp(self.params.g_min_s, self.params.g_max_s);
        PulseReport {
            switched: state.g_s != before,
            energy_j,
        }
    }

    fn nominal_pulse(&self, polarity: Polarity) -> Pulse {
        Pulse {
            polarity,
            amplitude_v: self.params.pulse_amplitude_v,
            width_s: self.params.pulse_width_s,
        }
    }

    fn conductance_at(&self, state: &IdealState, _t_s: f64) -> f64 {
        match state.stuck {
            Some(stuck) => self.stuck_conductance(stuck),
            None => state.g_s,
        }
    }

    fn read_noise_sigma(&self, _state: &IdealState, _t_s: f64) -> f64 {
        0.0
    }

    fn g_window(&self, _state: &IdealState) -> (f64, f64) {
        self.nominal_window()
    }

    fn nominal_window(&self) -> (f64, f64) {
        (self.params.g_min_s, self.params.g_max_s)
    }

    fn set_stuck(&self, state: &mut IdealState, stuck: Option<StuckAt>) {
        state.stuck = stuck;
    }
}
