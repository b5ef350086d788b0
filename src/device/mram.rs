//! Magnetic tunnel junction model: a stochastic binary device, written by spin-transfer
//! torque through the junction (STT-MRAM, two terminals) or by spin-orbit torque through a
//! heavy-metal line under it (SOT-MRAM, three terminals, `sot_write = true`).
//!
//! Two states, parallel (P, `R_P`, high conductance) and antiparallel (AP,
//! `R_AP = R_P (1 + TMR)`). Fabrication draws lognormal device-to-device spreads of `R_P`,
//! TMR and the critical current `Ic0`. A pulse of amplitude V drives `I = V / (R_state +
//! R_access)` through the junction (in series with its access transistor) for a width t:
//! - thermal regime: `P_th = 1 - exp(-t/tau)`, `tau = tau0 exp(Delta (1 - I/Ic0)^b)`
//!   (b = 1: Koch et al., PRL 2004; b = 2: Taniguchi & Imamura); the barrier is clamped at 0
//!   for `I >= Ic0`, so above Ic0 this channel switches on the attempt time tau0;
//! - precessional regime, `I > Ic0`: Sun's model with a thermally distributed initial angle
//!   (Sun, Proc. SPIE 2004; Vincent et al., IEEE TBioCAS 2015),
//!   `P_prec = exp(-(pi^2 Delta / 4) exp(-2 (I/Ic0 - 1) t / tau_D))`.
//!
//! The two channels are combined as independent ways of switching,
//! `P = 1 - (1 - P_th)(1 - P_prec)`. `P_prec` is zero at `I = Ic0` (up to `exp(-pi^2 Delta/4)`)
//! and `P_th` is constant above Ic0, so `P` is continuous and non-decreasing in I.
//!
//! **Write path.** An STT cell is written through the junction: `I = V / (R_state +
//! R_access)`, and the energy `I^2 R_state t` is dissipated in it. An SOT cell is written
//! through its heavy-metal (spin-Hall) line: `I = V / (R_HM + R_access)` whatever the
//! magnetic state, `Ic0` is the critical current *in the line*, and the energy `I^2 R_HM t`
//! is dissipated in the line; the same two switching channels (thermal and precessional)
//! with that current give the switching probability (the usual macrospin approximation for
//! SOT switching; no in-plane bias field, field-like torque or pulse-shape effects are
//! modelled). The junction carries no write current, so it sees no breakdown stress on
//! writes (neither model has a breakdown), and a read, which drives the junction only, never
//! switches an SOT cell.
//!
//! A SET pulse only switches an AP cell to P, a RESET pulse only a P cell to AP. A read
//! drives `I_read = V_read / (R + R_access)` for `t_read` in the AP->P direction, so it can
//! switch an STT cell from AP to P with the thermal formula (read disturb); the value
//! returned is the one sensed before the disturb. The retention time is `tau0 exp(Delta)`.
//! [`Device::program`] snaps to the state nearest the target (no analog levels).

use super::cell;
use super::params::{ParamError, all_non_negative, all_positive, stuck_fractions};
use super::sampling::{bernoulli, lognormal_factor, one_minus_exp_neg, standard_normal};
use super::{Device, Polarity, Pulse, PulseReport, StuckAt, WriteReport};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Parameters of the MTJ model (one preset).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MramParams {
    /// Parallel-state resistance, ohms.
    pub r_p_ohm: f64,
    /// Tunnel magnetoresistance ratio `(R_AP - R_P) / R_P` (1.5 = 150 %).
    pub tmr: f64,
    /// Series resistance of the access transistor during a write, ohms.
    pub r_access_ohm: f64,
    /// Device-to-device spread of `R_P` (lognormal log-sigma).
    pub d2d_r_p_sigma: f64,
    /// Device-to-device spread of TMR (lognormal log-sigma).
    pub d2d_tmr_sigma: f64,
    /// Device-to-device spread of `Ic0` (lognormal log-sigma).
    pub d2d_ic0_sigma: f64,
    /// Thermal stability factor Delta = E_b / (k_B T).
    pub delta: f64,
    /// Attempt time tau0, seconds.
    pub tau0_s: f64,
    /// Critical switching current at 0 K, amperes.
    pub ic0_a: f64,
    /// Exponent b of the barrier reduction `(1 - I/Ic0)^b`.
    pub barrier_exponent: f64,
    /// Characteristic time tau_D of precessional switching (Sun's model), seconds.
    pub tau_d_s: f64,
    /// Amplitude of the nominal SET (AP -> P) pulse, volts.
    pub set_pulse_v: f64,
    /// Width of the nominal SET pulse, seconds.
    pub set_pulse_width_s: f64,
    /// Amplitude of the nominal RESET (P -> AP) pulse, volts.
    pub reset_pulse_v: f64,
    /// Width of the nominal RESET pulse, seconds.
    pub reset_pulse_width_s: f64,
    /// Read voltage across junction and access transistor, volts.
    pub v_read_v: f64,
    /// Read duration, seconds.
    pub t_read_s: f64,
    /// Read noise: standard deviation as a fraction of the conductance read.
    pub read_noise_rel: f64,
    /// Probability that a junction is stuck in P (low resistance) at fabrication.
    pub p_stuck_lrs: f64,
    /// Probability that a junction is stuck in AP (high resistance) at fabrication.
    pub p_stuck_hrs: f64,
    /// Three-terminal spin-orbit-torque cell: writes drive the heavy-metal line (`r_hm_ohm`),
    /// not the junction, and reads never switch it (false: a two-terminal STT cell).
    #[serde(default)]
    pub sot_write: bool,
    /// Resistance of the heavy-metal (spin-Hall) write line of an SOT cell, ohms (only with
    /// `sot_write`; 0 otherwise).
    #[serde(default)]
    pub r_hm_ohm: f64,
}

impl MramParams {
    /// Check every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ParamError> {
        all_positive(&[
            ("r_p_ohm", self.r_p_ohm),
            ("tmr", self.tmr),
            ("delta", self.delta),
            ("tau0_s", self.tau0_s),
            ("ic0_a", self.ic0_a),
            ("barrier_exponent", self.barrier_exponent),
            ("tau_d_s", self.tau_d_s),
            ("set_pulse_v", self.set_pulse_v),
            ("set_pulse_width_s", self.set_pulse_width_s),
            ("reset_pulse_v", self.reset_pulse_v),
            ("reset_pulse_width_s", self.reset_pulse_width_s),
            ("t_read_s", self.t_read_s),
        ])?;
        all_non_negative(&[
            ("r_access_ohm", self.r_access_ohm),
            ("d2d_r_p_sigma", self.d2d_r_p_sigma),
            ("d2d_tmr_sigma", self.d2d_tmr_sigma),
            ("d2d_ic0_sigma", self.d2d_ic0_sigma),
            ("v_read_v", self.v_read_v),
            ("read_noise_rel", self.read_noise_rel),
            ("r_hm_ohm", self.r_hm_ohm),
        ])?;
        if self.sot_write && self.r_hm_ohm <= 0.0 {
            return Err(ParamError {
                field: "r_hm_ohm".to_string(),
                message: format!(
                    "must be > 0 for a three-terminal cell (sot_write = true): the resistance \
                     of the heavy-metal write line (got {})",
                    self.r_hm_ohm
                ),
            });
        }
        if !self.sot_write && self.r_hm_ohm != 0.0 {
            return Err(ParamError {
                field: "r_hm_ohm".to_string(),
                message: format!(
                    "is the write line of an SOT cell (got {}): set sot_write = true, or 0 for \
                     an STT cell, which is written through its junction",
                    self.r_hm_ohm
                ),
            });
        }
        stuck_fractions(self.p_stuck_lrs, self.p_stuck_hrs)
    }
}

/// One magnetic tunnel junction.
#[derive(Clone, Debug, PartialEq)]
pub struct MramState {
    /// Whether the free layer is parallel to the reference layer (low resistance).
    pub parallel: bool,
    /// This junction's parallel resistance, ohms.
    pub r_p_ohm: f64,
    /// This junction's TMR ratio.
    pub tmr: f64,
    /// This junction's critical current, amperes.
    pub ic0_a: f64,
    /// Stuck-at fault, if any.
    pub stuck: Option<StuckAt>,
}

impl MramState {
    /// Antiparallel resistance `R_P (1 + TMR)`, ohms.
    pub fn r_ap_ohm(&self) -> f64 {
        self.r_p_ohm * (1.0 + self.tmr)
    }

    /// Resistance of the present magnetic state (ignoring faults), ohms.
    pub fn resistance_ohm(&self) -> f64 {
        if self.parallel {
            self.r_p_ohm
        } else {
            self.r_ap_ohm()
        }
    }
}

/// The MTJ model.
#[derive(Clone, Debug, PartialEq)]
pub struct Mram {
    /// The model's parameters.
    pub params: MramParams,
}

impl Mram {
    /// A model with these (already validated) parameters.
    pub fn new(params: MramParams) -> Self {
        Self { params }
    }

    /// The nominal junction (no device-to-device spread), in state `parallel`.
    pub fn nominal_state(&self, parallel: bool) -> MramState {
        MramState {
            parallel,
            r_p_ohm: self.params.r_p_ohm,
            tmr: self.params.tmr,
            ic0_a: self.params.ic0_a,
            stuck: None,
        }
    }

    /// Retention time `tau0 exp(Delta)`, seconds.
    pub fn retention_time_s(&self) -> f64 {
        self.params.tau0_s * self.params.delta.exp()
    }

    /// Write current of a pulse of `amplitude_v` on `state`, amperes: through the junction
    /// and its access transistor (STT), or through the heavy-metal line and the access
    /// transistor, whatever the magnetic state (SOT).
    pub fn current_a(&self, state: &MramState, amplitude_v: f64) -> f64 {
        amplitude_v / (self.write_path_ohm(state) + self.params.r_access_ohm)
    }

    /// Resistance the write current dissipates its energy in: the junction (STT) or the
    /// heavy-metal line (SOT), ohms.
    pub fn write_path_ohm(&self, state: &MramState) -> f64 {
        if self.params.sot_write {
            self.params.r_hm_ohm
        } else {
            state.resistance_ohm()
        }
    }

    /// Read current through the junction and its access transistor, amperes.
    pub fn read_current_a(&self, state: &MramState) -> f64 {
        self.params.v_read_v / (state.resistance_ohm() + self.params.r_access_ohm)
    }

    /// Thermal switching time `tau0 exp(Delta (1 - I/Ic0)^b)` (barrier clamped at 0), seconds.
    pub fn thermal_time_s(&self, current_a: f64, ic0_a: f64) -> f64 {
        let p = &self.params;
        let reduced = (1.0 - current_a / ic0_a).max(0.0);
        p.tau0_s * (p.delta * reduced.powf(p.barrier_exponent)).exp()
    }

    /// Thermal-regime switching probability for a current pulse of `width_s`.
    pub fn thermal_probability(&self, current_a: f64, ic0_a: f64, width_s: f64) -> f64 {
        one_minus_exp_neg(width_s / self.thermal_time_s(current_a, ic0_a))
    }

    /// Precessional-regime switching probability (Sun's model; 0 for `I <= Ic0`).
    pub fn precessional_probability(&self, current_a: f64, ic0_a: f64, width_s: f64) -> f64 {
        let p = &self.params;
        let overdrive = current_a / ic0_a - 1.0;
        if overdrive <= 0.0 {
            return 0.0;
        }
        let exponent = PI * PI * p.delta / 4.0 * (-2.0 * overdrive * width_s / p.tau_d_s).exp();
        (-exponent).exp()
    }

    /// Combined switching probability of a constant current `current_a` for `width_s`.
    pub fn current_switching_probability(&self, current_a: f64, ic0_a: f64, width_s: f64) -> f64 {
        let p_th = self.thermal_probability(current_a, ic0_a, width_s);
        let p_prec = self.precessional_probability(current_a, ic0_a, width_s);
        1.0 - (1.0 - p_th) * (1.0 - p_prec)
    }

    /// Probability that `pulse` switches `state`: 0 if the polarity cannot change the state
    /// (SET on P, RESET on AP) or the junction is stuck.
    pub fn switching_probability(&self, state: &MramState, pulse: &Pulse) -> f64 {
        let can_switch = match pulse.polarity {
            Polarity::Set => !state.parallel,
            Polarity::Reset => state.parallel,
        };
        if !can_switch || state.stuck.is_some() {
            return 0.0;
        }
        let current = self.current_a(state, pulse.amplitude_v);
        self.current_switching_probability(current, state.ic0_a, pulse.width_s)
    }

    /// Probability that one read switches an AP junction to P (read disturb); 0 for P, and
    /// for an SOT cell, whose junction's current exerts no switching torque.
    pub fn read_disturb_probability(&self, state: &MramState) -> f64 {
        if state.parallel || state.stuck.is_some() || self.params.sot_write {
            return 0.0;
        }
        let current = self.read_current_a(state);
        self.thermal_probability(current, state.ic0_a, self.params.t_read_s)
    }

    fn set_parallel(state: &mut MramState, parallel: bool) {
        if state.stuck.is_none() {
            state.parallel = parallel;
        }
    }

    fn write_report(&self, state: &MramState, polarity: Polarity) -> WriteReport {
        let pulse = self.nominal_pulse(polarity);
        cell::one_pulse_write(&pulse, self.pulse_energy_j(state, &pulse))
    }

    /// Energy dissipated in the write path (junction or heavy-metal line), `I^2 R t`, joules.
    fn pulse_energy_j(&self, state: &MramState, pulse: &Pulse) -> f64 {
        let current = self.current_a(state, pulse.amplitude_v);
        current * current * self.write_path_ohm(state) * pulse.width_s
    }
}

impl Device for Mram {
    type State = MramState;

    fn fabricate<R: Rng + ?Sized>(&self, rng: &mut R) -> MramState {
        let p = &self.params;
        let r_p_ohm = p.r_p_ohm * lognormal_factor(p.d2d_r_p_sigma, rng);
        let tmr = p.tmr * lognormal_factor(p.d2d_tmr_sigma, rng);
        let ic0_a = p.ic0_a * lognormal_factor(p.d2d_ic0_sigma, rng);
        let stuck = cell::draw_stuck(p.p_stuck_lrs, p.p_stuck_hrs, rng);
        let parallel = stuck != Some(StuckAt::Hrs);
        MramState {
            parallel,
            r_p_ohm,
            tmr,
            ic0_a,
            stuck,
        }
    }

    fn program<R: Rng + ?Sized>(
        &self,
        state: &mut MramState,
        g_target_s: f64,
        _rng: &mut R,
    ) -> WriteReport {
        let (g_ap, g_p) = self.g_window(state);
        let parallel = (g_target_s - g_p).abs() <= (g_target_s - g_ap).abs();
        let report = self.write_report(
            state,
            if parallel {
                Polarity::Set
            } else {
                Polarity::Reset
            },
        );
        Self::set_parallel(state, parallel);
        report
    }

    fn program_binary<R: Rng + ?Sized>(
        &self,
        state: &mut MramState,
        high: bool,
        _rng: &mut R,
    ) -> WriteReport {
        let report = self.write_report(state, if high { Polarity::Set } else { Polarity::Reset });
        Self::set_parallel(state, high);
        report
    }

    fn apply_pulse<R: Rng + ?Sized>(
        &self,
        state: &mut MramState,
        pulse: &Pulse,
        rng: &mut R,
    ) -> PulseReport {
        let energy_j = self.pulse_energy_j(state, pulse);
        let switched = bernoulli(self.switching_probability(state, pulse), rng);
        if switched {
            state.parallel = !state.parallel;
        }
        PulseReport { switched, energy_j }
    }

    fn nominal_pulse(&self, polarity: Polarity) -> Pulse {
        let p = &self.params;
        let set = (p.set_pulse_v, p.set_pulse_width_s);
        Pulse::by_polarity(polarity, set, (p.reset_pulse_v, p.reset_pulse_width_s))
    }

    fn conductance_at(&self, state: &MramState, _t_s: f64) -> f64 {
        match state.stuck {
            Some(StuckAt::Lrs) => 1.0 / state.r_p_ohm,
            Some(StuckAt::Hrs) => 1.0 / state.r_ap_ohm(),
            None => 1.0 / state.resistance_ohm(),
        }
    }

    fn read_noise_sigma(&self, state: &MramState, t_s: f64) -> f64 {
        self.params.read_noise_rel * self.conductance_at(state, t_s)
    }

    fn read<R: Rng + ?Sized>(&self, state: &mut MramState, t_s: f64, rng: &mut R) -> f64 {
        let g = self.conductance_at(state, t_s);
        let sensed = (g + self.read_noise_sigma(state, t_s) * standard_normal(rng)).max(0.0);
        if bernoulli(self.read_disturb_probability(state), rng) {
            state.parallel = true;
        }
        sensed
    }

    fn g_window(&self, state: &MramState) -> (f64, f64) {
        (1.0 / state.r_ap_ohm(), 1.0 / state.r_p_ohm)
    }

    fn nominal_window(&self) -> (f64, f64) {
        let p = &self.params;
        (1.0 / (p.r_p_ohm * (1.0 + p.tmr)), 1.0 / p.r_p_ohm)
    }

    fn set_stuck(&self, state: &mut MramState, stuck: Option<StuckAt>) {
        state.stuck = stuck;
        match stuck {
            Some(StuckAt::Lrs) => state.parallel = true,
            Some(StuckAt::Hrs) => state.parallel = false,
            None => {}
        }
    }
}
