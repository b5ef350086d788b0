//! Device models: how one memory cell stores, changes and returns a conductance.
//!
//! Every model implements [`Device`]: a *model* object holds the preset's parameters
//! (shared by every cell of an array), and each cell owns a [`Device::State`] drawn at
//! "fabrication" (device-to-device variability) and changed by programming and pulses
//! (cycle-to-cycle variability, stochastic switching). Reads are noisy and depend on the
//! time elapsed since programming (drift, relaxation).
//!
//! Models: [`ideal`] (noise-free twin), [`rram`] (filamentary HfOx, analog and binary),
//! [`pcm`] (GST, IBM's statistical model), [`mram`] (STT magnetic tunnel junction), [`pulsed`]
//! (pulsed analog devices of aihwkit's six step-model families); [`AnyDevice`]
//! chooses one at run time, and [`preset`] builds it from a documented TOML preset
//! (`device_models/*.toml`, compiled in) with parameter overrides by name; [`fit`] fits a
//! pulsed step family to a measured pulse response.
//!
//! Units are SI throughout: siemens, volts, amperes, seconds, joules.
//! Every random draw takes the caller's generator (see [`crate::rng`]), so results are
//! reproducible bit for bit.

pub mod any;
pub mod cell;
pub mod fit;
pub mod ideal;
pub mod mram;
pub mod params;
pub mod pcm;
pub mod preset;
pub mod pulsed;
pub mod rram;
pub mod sampling;

pub use any::{AnyDevice, AnyState};

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Direction of a programming pulse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Polarity {
    /// Potentiation: conductance goes up (SET for RRAM/PCM, AP->P for an MTJ).
    Set,
    /// Depression: conductance goes down (RESET for RRAM/PCM, P->AP for an MTJ).
    Reset,
}

/// One rectangular programming pulse applied across a cell.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pulse {
    /// SET (potentiate) or RESET (depress).
    pub polarity: Polarity,
    /// Pulse amplitude across the cell, volts (always positive; the polarity gives the sign).
    pub amplitude_v: f64,
    /// Pulse width, seconds.
    pub width_s: f64,
}

impl Pulse {
    /// The pulse of `polarity` from a preset's nominal SET and RESET pulses, each given
    /// as (amplitude V, width s).
    pub fn by_polarity(polarity: Polarity, set: (f64, f64), reset: (f64, f64)) -> Self {
        let (amplitude_v, width_s) = match polarity {
            Polarity::Set => set,
            Polarity::Reset => reset,
        };
        Pulse {
            polarity,
            amplitude_v,
            width_s,
        }
    }
}

/// What one pulse did to a cell.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PulseReport {
    /// Whether the cell changed state (a switching event happened).
    pub switched: bool,
    /// Energy dissipated in the cell by the pulse, joules.
    pub energy_j: f64,
}

/// Cost of a programming operation (one or more pulses).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WriteReport {
    /// Number of pulses applied.
    pub pulses: u32,
    /// Energy dissipated in the cell, joules.
    pub energy_j: f64,
    /// Time spent pulsing, seconds.
    pub time_s: f64,
}

impl WriteReport {
    /// Accumulate another write's cost into this one.
    pub fn add(&mut self, other: WriteReport) {
        self.pulses += other.pulses;
        self.energy_j += other.energy_j;
        self.time_s += other.time_s;
    }
}

/// A cell stuck in one state by a fabrication or endurance fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StuckAt {
    /// Stuck in the low-resistance (high-conductance) state.
    Lrs,
    /// Stuck in the high-resistance (low-conductance) state.
    Hrs,
}

/// A memory device model.
///
/// `Self` holds the model's parameters; [`Device::State`] is one cell (its own
/// fabricated parameters and its present state).
pub trait Device: Send + Sync {
    /// One cell: fabricated parameters plus present state.
    type State: Clone + Send + Sync + std::fmt::Debug;

    /// Draw one cell at fabrication: device-to-device variability and fabrication faults.
    fn fabricate<R: Rng + ?Sized>(&self, rng: &mut R) -> Self::State;

    /// Open-loop programming towards `g_target_s` (siemens) in one shot, with the
    /// model's programming noise. Targets outside the cell's window are clipped to it.
    fn program<R: Rng + ?Sized>(
        &self,
        state: &mut Self::State,
        g_target_s: f64,
        rng: &mut R,
    ) -> WriteReport;

    /// Program the cell as a binary memory: `high = true` gives the low-resistance
    /// (high-conductance) state. Binary-capable models override this with their
    /// LRS/HRS distributions; the default programs the ends of the window.
    fn program_binary<R: Rng + ?Sized>(
        &self,
        state: &mut Self::State,
        high: bool,
        rng: &mut R,
    ) -> WriteReport {
        let (g_min, g_max) = self.g_window(state);
        self.program(state, if high { g_max } else { g_min }, rng)
    }

    /// Apply one SET/RESET pulse (cycle-to-cycle noise, stochastic switching).
    fn apply_pulse<R: Rng + ?Sized>(
        &self,
        state: &mut Self::State,
        pulse: &Pulse,
        rng: &mut R,
    ) -> PulseReport;

    /// The pulse this model uses for one analog potentiation/depression step.
    fn nominal_pulse(&self, polarity: Polarity) -> Pulse;

    /// The mean conductance step of one nominal pulse, siemens, for models that declare it
    /// (the pulsed step-model devices: `dw_min` in siemens, the step aihwkit's pulsed update
    /// scales by); `None` (the default) lets a tile measure it on probe cells.
    fn declared_step_s(&self) -> Option<f64> {
        None
    }

    /// Nominal pulses that take a device across its window in the direction of `polarity`
    /// (NeuroSim's `maxNumLevelLTP` / `maxNumLevelLTD`), for models that count levels (RRAM);
    /// `None` (the default) for the others.
    fn window_levels(&self, _polarity: Polarity) -> Option<f64> {
        None
    }

    /// Whether cells change once per update of their tile ([`Device::after_update`]: the
    /// decay and diffusion of aihwkit's pulsed devices); `false` (the default) lets a tile
    /// skip the pass over its cells.
    fn evolves_per_update(&self) -> bool {
        false
    }

    /// What happens to a cell once per (mini-batch) update of its tile, after the update's
    /// pulses. The default does nothing.
    fn after_update<R: Rng + ?Sized>(&self, _state: &mut Self::State, _rng: &mut R) {}

    /// Noise-free conductance `t_s` seconds after the last programming (drift included), siemens.
    fn conductance_at(&self, state: &Self::State, t_s: f64) -> f64;

    /// Standard deviation of the Gaussian read noise of a read `t_s` seconds after
    /// programming, siemens.
    fn read_noise_sigma(&self, state: &Self::State, t_s: f64) -> f64;

    /// One noisy read `t_s` seconds after programming, siemens (never negative).
    /// Models with read disturb may change the state.
    fn read<R: Rng + ?Sized>(&self, state: &mut Self::State, t_s: f64, rng: &mut R) -> f64 {
        let g = self.conductance_at(state, t_s);
        let sigma = self.read_noise_sigma(state, t_s);
        let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
        (g + sigma * z).max(0.0)
    }

    /// This cell's programmable window `[g_min, g_max]`, siemens (after device-to-device spread).
    fn g_window(&self, state: &Self::State) -> (f64, f64);

    /// The model's nominal window `[g_min, g_max]`, siemens, used to map weights.
    fn nominal_window(&self) -> (f64, f64);

    /// Force a stuck-at fault on the cell (or clear it with `None`).
    fn set_stuck(&self, state: &mut Self::State, stuck: Option<StuckAt>);
}
