//! Filamentary HfOx RRAM (memristor) model, analog and binary.
//!
//! **Analog mode** (after [`Device::program`] or at fabrication): the conductance moves
//! between the cell's window `[g_min, g_max]` in steps whose size depends on the state, with
//! NeuroSim's saturating exponential pulse response (Chen, Peng & Yu, IEEE TCAD 2018):
//! `G(p) = B (1 - exp(-p/A)) + G_min` for potentiation and its mirror image for depression,
//! `B = (G_max - G_min) / (1 - exp(-P_max/A))`. `A` follows from NeuroSim's nonlinearity label
//! (see [`nonlinearity_to_a_normalised`]); separate potentiation and depression labels and
//! level counts give the up/down asymmetry. Labels are signed in the direction of travel: a
//! positive label saturates (steps shrink as the cell approaches the bound it moves
//! towards, the usual shape), a negative one accelerates (`A < 0`: steps grow). NeuroSim
//! writes both curves from `G_min`, so its depression label has the opposite sign: its
//! usual `-4.88` is `4.88` here, and the accelerating depression of its GST PCM (`2.4`) is
//! `-2.4`. Each step adds Gaussian cycle-to-cycle noise
//! whose standard deviation is a fraction of the window. Fabrication draws a lognormal
//! window scale and a lognormal step-size scale per device (device-to-device variability).
//!
//! **Binary mode** (after [`Device::program_binary`]): the cell is in the low-resistance
//! state (LRS) or the high-resistance state (HRS). The LRS median resistance follows the
//! universal law `R_LRS = V_c / I_cc` of the compliance current `I_cc` (Ielmini, IEEE TED 2011),
//! and its lognormal spread shrinks with the compliance current,
//! `sigma_lnR(I_cc) = sigma_ref (I_ref / I_cc)^alpha`. The HRS is lognormal with its own spread.
//! A switching SET pulse draws a fresh LRS, a switching RESET a fresh HRS. In conductance the
//! LRS is lognormal too, with median `G_LRS = I_cc / V_c` and the same log-spread, so a
//! RESET followed by a SET at a chosen compliance current draws a new conductance from a
//! distribution whose median the current sets ([`Rram::reprogram_lrs`],
//! [`Rram::compliance_for_median_a`], [`Rram::lrs_log_density`]): the cycle-to-cycle
//! proposal of the MCMC sampler of `bayes::mcmc` (Dalgaty et al., Nature Electronics 2021).
//!
//! **Endurance** (binary mode): every SET after a RESET is one cycle, counted per cell
//! ([`RramState::cycles`]). After `n` cycles the LRS log-spread grows and the HRS median
//! falls (the memory window closes), both as power laws of `1 + n / n_0`:
//! `sigma_lnR(I_cc, n) = sigma_lnR(I_cc) (1 + n/n_0)^beta_sigma` and
//! `R_HRS(n) = R_HRS (1 + n/n_0)^-beta_w` (the trends of HfO2 OxRAM arrays cycled to 1e7-1e8
//! cycles: Grossi et al., IEEE TED 2019; Dalgaty et al., Nature Electronics 2021).
//!
//! **Switching kinetics** (both modes): a pulse of amplitude V and width w switches with
//! probability `P = 1 - exp(-w / tau(V))`, `tau(V) = tau0 exp(-V / V0)` (voltage-time relation,
//! Gaba, Sheridan & Lu, Nanoscale 2013); a pulse that does not switch leaves G unchanged.
//!
//! Reads add Gaussian noise proportional to G. Stuck-at-LRS/HRS faults are drawn at
//! fabrication.
//!
//! **Retention relaxation** (analog mode, a simple documented model, off in the preset):
//! after every programming or switching pulse the cell draws `z ~ N(0, 1)` and its
//! conductance wanders as `G(t) = G_prog + z s (G_max - G_min) log10(1 + t / t_relax)`,
//! clamped to the window: a random displacement whose spread grows by `s` of the window per
//! decade of time after `t_relax`. Binary states do not relax.

use super::cell;
use super::params::{
    ParamError, all_non_negative, all_positive, at_least_one, ordered, positive, stuck_fractions,
};
use super::sampling::{bernoulli, lognormal_factor, one_minus_exp_neg, standard_normal};
use super::{Device, Polarity, Pulse, PulseReport, StuckAt, WriteReport};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Maximum deviation of NeuroSim's normalised pulse-response curve from a straight line, per
/// unit of its nonlinearity label. Reproduces NeuroSim's `getParamA` look-up table (labels
/// 0.01 to 9) to better than 0.1 %.
pub const NEUROSIM_DEVIATION_PER_NL: f64 = 0.098_994_9;

/// Largest nonlinearity label accepted: the deviation from linear must stay below 1.
pub const MAX_NONLINEARITY: f64 = 10.0;

/// Parameters of the RRAM model (one preset).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RramParams {
    /// Lower end of the nominal analog conductance window, siemens.
    pub g_min_s: f64,
    /// Upper end of the nominal analog conductance window, siemens.
    pub g_max_s: f64,
    /// Potentiation pulses that take the nominal device from `g_min_s` to `g_max_s`.
    pub levels_ltp: u32,
    /// Depression pulses that take the nominal device from `g_max_s` to `g_min_s`.
    pub levels_ltd: u32,
    /// NeuroSim nonlinearity label of potentiation (0 = linear; positive: saturating towards
    /// g_max, negative: accelerating towards g_max).
    pub nonlinearity_ltp: f64,
    /// Nonlinearity label of depression in the direction of travel (0 = linear; positive:
    /// saturating towards g_min, negative: accelerating) = minus NeuroSim's `NL_LTD`.
    pub nonlinearity_ltd: f64,
    /// Cycle-to-cycle noise of one analog step: standard deviation as a fraction of the window.
    pub c2c_sigma: f64,
    /// Device-to-device spread of the window: log-standard deviation of a lognormal scale
    /// applied to both ends of the window.
    pub d2d_window_sigma: f64,
    /// Device-to-device spread of the analog step size: log-standard deviation of a lognormal
    /// scale of the step (applied to the number of levels).
    pub d2d_step_sigma: f64,
    /// Open-loop programming noise: standard deviation as a fraction of the window.
    pub program_sigma: f64,
    /// Read noise: standard deviation as a fraction of the conductance read.
    pub read_noise_rel: f64,
    /// Probability that a cell is stuck in the LRS at fabrication.
    pub p_stuck_lrs: f64,
    /// Probability that a cell is stuck in the HRS at fabrication.
    pub p_stuck_hrs: f64,
    /// Characteristic voltage of the LRS law `R_LRS = V_c / I_cc`, volts.
    pub v_c_v: f64,
    /// Relaxation after analog programming: spread per decade of time, fraction of the window.
    pub relax_sigma_per_decade: f64,
    /// Onset time of the relaxation, seconds.
    pub t_relax_s: f64,
    /// Compliance current used by binary programming, amperes.
    pub i_compliance_a: f64,
    /// Log-standard deviation of the LRS resistance at the reference compliance current.
    pub sigma_ln_r_lrs_ref: f64,
    /// Reference compliance current of `sigma_ln_r_lrs_ref`, amperes.
    pub i_ref_a: f64,
    /// Exponent alpha of the spread law `sigma_lnR = sigma_ref (I_ref / I_cc)^alpha`.
    pub lrs_spread_exponent: f64,
    /// Median HRS resistance, ohms.
    pub r_hrs_median_ohm: f64,
    /// Log-standard deviation of the HRS resistance.
    pub sigma_ln_r_hrs: f64,
    /// Endurance: cycle count `n_0` after which degradation sets in, cycles.
    pub endurance_onset_cycles: f64,
    /// Endurance: exponent `beta_sigma` of the LRS log-spread growth `(1 + n/n_0)^beta_sigma`.
    pub endurance_spread_exponent: f64,
    /// Endurance: exponent `beta_w` of the HRS median decay `(1 + n/n_0)^-beta_w`.
    pub endurance_window_exponent: f64,
    /// SET switching time extrapolated to 0 V, seconds (`tau = tau0 exp(-V/V0)`).
    pub tau0_set_s: f64,
    /// SET voltage scale V0, volts.
    pub v0_set_v: f64,
    /// RESET switching time extrapolated to 0 V, seconds.
    pub tau0_reset_s: f64,
    /// RESET voltage scale V0, volts.
    pub v0_reset_v: f64,
    /// Amplitude of the nominal SET pulse, volts.
    pub set_pulse_v: f64,
    /// Width of the nominal SET pulse, seconds.
    pub set_pulse_width_s: f64,
    /// Amplitude of the nominal RESET pulse, volts.
    pub reset_pulse_v: f64,
    /// Width of the nominal RESET pulse, seconds.
    pub reset_pulse_width_s: f64,
}

impl RramParams {
    /// Check every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ParamError> {
        positive("g_min_s", self.g_min_s)?;
        positive("g_max_s", self.g_max_s)?;
        ordered("g_min_s", self.g_min_s, "g_max_s", self.g_max_s)?;
        at_least_one("levels_ltp", self.levels_ltp)?;
        at_least_one("levels_ltd", self.levels_ltd)?;
        for (field, nl) in [
            ("nonlinearity_ltp", self.nonlinearity_ltp),
            ("nonlinearity_ltd", self.nonlinearity_ltd),
        ] {
            if nl.is_nan() || nl.abs() >= MAX_NONLINEARITY {
                return Err(ParamError {
                    field: field.to_string(),
                    message: format!(
                        "must lie strictly between -{MAX_NONLINEARITY} and {MAX_NONLINEARITY} \
                         (got {nl}); give NeuroSim's label, with the sign of NL_LTD reversed \
                         for the depression"
                    ),
                });
            }
        }
        all_non_negative(&[
            ("c2c_sigma", self.c2c_sigma),
            ("d2d_window_sigma", self.d2d_window_sigma),
            ("d2d_step_sigma", self.d2d_step_sigma),
            ("program_sigma", self.program_sigma),
            ("read_noise_rel", self.read_noise_rel),
            ("relax_sigma_per_decade", self.relax_sigma_per_decade),
            ("sigma_ln_r_lrs_ref", self.sigma_ln_r_lrs_ref),
            ("lrs_spread_exponent", self.lrs_spread_exponent),
            ("sigma_ln_r_hrs", self.sigma_ln_r_hrs),
            ("endurance_spread_exponent", self.endurance_spread_exponent),
            ("endurance_window_exponent", self.endurance_window_exponent),
        ])?;
        stuck_fractions(self.p_stuck_lrs, self.p_stuck_hrs)?;
        all_positive(&[
            ("v_c_v", self.v_c_v),
            ("t_relax_s", self.t_relax_s),
            ("i_compliance_a", self.i_compliance_a),
            ("i_ref_a", self.i_ref_a),
            ("endurance_onset_cycles", self.endurance_onset_cycles),
            ("r_hrs_median_ohm", self.r_hrs_median_ohm),
            ("tau0_set_s", self.tau0_set_s),
            ("v0_set_v", self.v0_set_v),
            ("tau0_reset_s", self.tau0_reset_s),
            ("v0_reset_v", self.v0_reset_v),
            ("set_pulse_v", self.set_pulse_v),
            ("set_pulse_width_s", self.set_pulse_width_s),
            ("reset_pulse_v", self.reset_pulse_v),
            ("reset_pulse_width_s", self.reset_pulse_width_s),
        ])?;
        Ok(())
    }
}

/// Convert NeuroSim's nonlinearity label into the normalised curvature `A / P_max`.
///
/// The label is proportional to the largest deviation of the normalised curve
/// `g(x) = (1 - exp(-x/a)) / (1 - exp(-1/a))`, `x = p / P_max`, from the straight line
/// `g = x` ([`NEUROSIM_DEVIATION_PER_NL`] per unit label). Returns `None` for a label of 0
/// (linear response). A negative label gives `-a` of its magnitude: the mirror-image,
/// accelerating curve (as NeuroSim's `getParamA` does for negative labels). Solved by
/// bisection on `ln a`.
pub fn nonlinearity_to_a_normalised(nl: f64) -> Option<f64> {
    if nl == 0.0 || !nl.is_finite() {
        return None;
    }
    let target = (nl.abs() * NEUROSIM_DEVIATION_PER_NL).min(0.999_999);
    let (mut lo, mut hi) = (1e-6f64.ln(), 1e9f64.ln());
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        // The deviation falls as a grows: a larger deviation needs a smaller a.
        if max_deviation_from_linear(mid.exp()) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some((0.5 * (lo + hi)).exp().copysign(nl))
}

/// Largest `g(x) - x` of the normalised saturating curve with curvature `a` (see above).
fn max_deviation_from_linear(a: f64) -> f64 {
    let one_minus = -(-1.0 / a).exp_m1();
    let x_star = -a * (a * one_minus).ln();
    1.0 / one_minus - a - x_star
}

/// One direction's pulse response of one device: distance travelled from the starting bound
/// after `p` pulses, `x(p) = B (1 - exp(-p/A))` (or linear).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PulseResponse {
    /// Window span this response covers, siemens.
    pub span_s: f64,
    /// Pulses needed to cover the span.
    pub levels: f64,
    /// Curvature A in pulses (`None`: linear).
    pub a_pulses: Option<f64>,
    /// Amplitude B, siemens.
    pub b_s: f64,
}

impl PulseResponse {
    /// Response with `levels` pulses over `span_s` and normalised curvature `a_normalised`
    /// (`A / P_max`, from [`nonlinearity_to_a_normalised`]; `None` for a linear response).
    pub fn new(span_s: f64, levels: f64, a_normalised: Option<f64>) -> Self {
        let a_pulses = a_normalised.map(|a| a * levels);
        let b_s = match a_pulses {
            Some(a) => span_s / one_minus_exp_neg(levels / a),
            None => span_s,
        };
        Self {
            span_s,
            levels,
            a_pulses,
            b_s,
        }
    }

    /// Distance from the starting bound after `p` pulses, siemens.
    pub fn travel(&self, p: f64) -> f64 {
        match self.a_pulses {
            Some(a) => self.b_s * one_minus_exp_neg(p / a),
            None => self.span_s * p / self.levels,
        }
    }

    /// Pulse number at which the curve has travelled `x_s` (clamped to the span).
    pub fn pulses_for(&self, x_s: f64) -> f64 {
        let x = x_s.clamp(0.0, self.span_s);
        match self.a_pulses {
            Some(a) => -a * (-(x / self.b_s)).ln_1p(),
            None => x / self.span_s * self.levels,
        }
    }

    /// Noise-free size of the next step from travelled distance `x_s`, siemens.
    pub fn step_from(&self, x_s: f64) -> f64 {
        self.travel(self.pulses_for(x_s) + 1.0) - x_s.clamp(0.0, self.span_s)
    }
}

/// Operating mode of an RRAM cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RramMode {
    /// Multi-level analog operation within the window.
    Analog,
    /// Binary LRS/HRS operation with compliance-current-controlled LRS.
    Binary,
}

/// One RRAM cell.
#[derive(Clone, Debug, PartialEq)]
pub struct RramState {
    /// Conductance right after the last programming or switching event, siemens.
    pub g_s: f64,
    /// Standard normal draw setting the direction and size of this cell's relaxation since
    /// the last programming.
    pub relax_z: f64,
    /// Analog or binary operation (set by the last programming call).
    pub mode: RramMode,
    /// This device's window lower end, siemens.
    pub g_min_s: f64,
    /// This device's window upper end, siemens.
    pub g_max_s: f64,
    /// This device's potentiation response.
    pub ltp: PulseResponse,
    /// This device's depression response.
    pub ltd: PulseResponse,
    /// Stuck-at fault, if any.
    pub stuck: Option<StuckAt>,
    /// Binary SET events (each after a RESET: one endurance cycle) since fabrication.
    pub cycles: u64,
}

/// The RRAM model. Build it with [`Rram::new`]: the curvatures of the pulse response are
/// derived from the parameters once, there.
#[derive(Clone, Debug, PartialEq)]
pub struct Rram {
    /// The model's parameters (read-only after construction).
    pub params: RramParams,
    /// Normalised curvature of potentiation, from `nonlinearity_ltp`.
    a_norm_ltp: Option<f64>,
    /// Normalised curvature of depression, from `nonlinearity_ltd`.
    a_norm_ltd: Option<f64>,
}

impl Rram {
    /// A model with these (already validated) parameters.
    pub fn new(params: RramParams) -> Self {
        Self {
            a_norm_ltp: nonlinearity_to_a_normalised(params.nonlinearity_ltp),
            a_norm_ltd: nonlinearity_to_a_normalised(params.nonlinearity_ltd),
            params,
        }
    }

    /// Switching time constant `tau(V) = tau0 exp(-V/V0)` for this polarity, seconds.
    pub fn switching_time_s(&self, polarity: Polarity, amplitude_v: f64) -> f64 {
        let p = &self.params;
        match polarity {
            Polarity::Set => p.tau0_set_s * (-amplitude_v / p.v0_set_v).exp(),
            Polarity::Reset => p.tau0_reset_s * (-amplitude_v / p.v0_reset_v).exp(),
        }
    }

    /// Probability that `pulse` causes a switching event, `1 - exp(-w/tau(V))`.
    pub fn switching_probability(&self, pulse: &Pulse) -> f64 {
        let tau = self.switching_time_s(pulse.polarity, pulse.amplitude_v);
        one_minus_exp_neg(pulse.width_s / tau)
    }

    /// Probability that `pulse` switches this cell (0 for a stuck cell).
    pub fn cell_switching_probability(&self, state: &RramState, pulse: &Pulse) -> f64 {
        if state.stuck.is_some() {
            0.0
        } else {
            self.switching_probability(pulse)
        }
    }

    /// Median LRS resistance at compliance current `i_cc_a`, `V_c / I_cc`, ohms.
    pub fn lrs_median_resistance_ohm(&self, i_cc_a: f64) -> f64 {
        self.params.v_c_v / i_cc_a
    }

    /// Median LRS conductance at compliance current `i_cc_a`, `I_cc / V_c`, siemens.
    pub fn lrs_median_conductance_s(&self, i_cc_a: f64) -> f64 {
        1.0 / self.lrs_median_resistance_ohm(i_cc_a)
    }

    /// The compliance current whose LRS median conductance is `g_s`, `V_c G`, amperes.
    pub fn compliance_for_median_a(&self, g_s: f64) -> f64 {
        self.params.v_c_v * g_s
    }

    /// Endurance degradation factor `1 + n / n_0` after `cycles` cycles.
    fn wear(&self, cycles: u64) -> f64 {
        1.0 + cycles as f64 / self.params.endurance_onset_cycles
    }

    /// Log-standard deviation of the LRS resistance (and conductance) at compliance current
    /// `i_cc_a` after `cycles` endurance cycles,
    /// `sigma_ref (I_ref / I_cc)^alpha (1 + n/n_0)^beta_sigma`.
    pub fn lrs_sigma_ln_r(&self, i_cc_a: f64, cycles: u64) -> f64 {
        let p = &self.params;
        p.sigma_ln_r_lrs_ref
            * (p.i_ref_a / i_cc_a).powf(p.lrs_spread_exponent)
            * self.wear(cycles).powf(p.endurance_spread_exponent)
    }

    /// Median HRS resistance after `cycles` endurance cycles, `R_HRS (1 + n/n_0)^-beta_w`, ohms.
    pub fn hrs_median_resistance_ohm(&self, cycles: u64) -> f64 {
        let p = &self.params;
        p.r_hrs_median_ohm * self.wear(cycles).powf(-p.endurance_window_exponent)
    }

    /// Log probability density (per siemens) that a SET at compliance current `i_cc_a` after
    /// `cycles` cycles gives the LRS conductance `g_s`: lognormal, median `I_cc / V_c`,
    /// log-spread [`Rram::lrs_sigma_ln_r`].
    pub fn lrs_log_density(&self, g_s: f64, i_cc_a: f64, cycles: u64) -> f64 {
        let sigma = self.lrs_sigma_ln_r(i_cc_a, cycles);
        let z = (g_s / self.lrs_median_conductance_s(i_cc_a)).ln() / sigma;
        -0.5 * z * z - (sigma * g_s).ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
    }

    /// Re-program a cell: a RESET, then a SET at compliance current `i_cc_a`, which draws a
    /// fresh LRS conductance (one endurance cycle). Returns the cost of both pulses.
    pub fn reprogram_lrs<R: Rng + ?Sized>(
        &self,
        state: &mut RramState,
        i_cc_a: f64,
        rng: &mut R,
    ) -> WriteReport {
        let mut report = self.program_binary_with_compliance(state, false, i_cc_a, rng);
        report.add(self.program_binary_with_compliance(state, true, i_cc_a, rng));
        report
    }

    /// Program the cell as a binary memory with an explicit compliance current (LRS) in amperes.
    pub fn program_binary_with_compliance<R: Rng + ?Sized>(
        &self,
        state: &mut RramState,
        high: bool,
        i_cc_a: f64,
        rng: &mut R,
    ) -> WriteReport {
        state.mode = RramMode::Binary;
        let pulse = self.nominal_pulse(if high { Polarity::Set } else { Polarity::Reset });
        let energy_j = cell::joule_energy_j(&pulse, state.g_s);
        if state.stuck.is_none() {
            state.g_s = if high {
                state.cycles += 1;
                self.draw_lrs_conductance(i_cc_a, state.cycles, rng)
            } else {
                self.draw_hrs_conductance(state.cycles, rng)
            };
        }
        cell::one_pulse_write(&pulse, energy_j)
    }

    fn draw_lrs_conductance<R: Rng + ?Sized>(&self, i_cc_a: f64, cycles: u64, rng: &mut R) -> f64 {
        let r = self.lrs_median_resistance_ohm(i_cc_a)
            * lognormal_factor(self.lrs_sigma_ln_r(i_cc_a, cycles), rng);
        1.0 / r
    }

    fn draw_hrs_conductance<R: Rng + ?Sized>(&self, cycles: u64, rng: &mut R) -> f64 {
        let r = self.hrs_median_resistance_ohm(cycles);
        1.0 / (r * lognormal_factor(self.params.sigma_ln_r_hrs, rng))
    }

    fn stuck_conductance(&self, state: &RramState, stuck: StuckAt) -> f64 {
        match (state.mode, stuck) {
            (RramMode::Analog, StuckAt::Lrs) => state.g_max_s,
            (RramMode::Analog, StuckAt::Hrs) => state.g_min_s,
            (RramMode::Binary, StuckAt::Lrs) => {
                1.0 / self.lrs_median_resistance_ohm(self.params.i_compliance_a)
            }
            (RramMode::Binary, StuckAt::Hrs) => 1.0 / self.hrs_median_resistance_ohm(state.cycles),
        }
    }

    /// One analog step (nonlinear response plus cycle-to-cycle noise), clamped to the window.
    fn analog_step<R: Rng + ?Sized>(&self, state: &mut RramState, polarity: Polarity, rng: &mut R) {
        let span = state.g_max_s - state.g_min_s;
        let g = state.g_s.clamp(state.g_min_s, state.g_max_s);
        let step = match polarity {
            Polarity::Set => state.ltp.step_from(g - state.g_min_s),
            Polarity::Reset => -state.ltd.step_from(state.g_max_s - g),
        };
        let noise = self.params.c2c_sigma * span * standard_normal(rng);
        state.g_s = (g + step + noise).clamp(state.g_min_s, state.g_max_s);
        state.relax_z = self.draw_relaxation(rng);
    }

    /// A fresh relaxation draw (no randomness used when relaxation is off).
    fn draw_relaxation<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        if self.params.relax_sigma_per_decade > 0.0 {
            standard_normal(rng)
        } else {
            0.0
        }
    }

    /// Analog conductance `t_s` seconds after programming, with relaxation, siemens.
    pub fn relaxed_conductance(&self, state: &RramState, t_s: f64) -> f64 {
        if state.relax_z == 0.0 || t_s <= 0.0 {
            return state.g_s;
        }
        let span = state.g_max_s - state.g_min_s;
        let decades = (t_s / self.params.t_relax_s).ln_1p() / std::f64::consts::LN_10;
        let shift = state.relax_z * self.params.relax_sigma_per_decade * span * decades;
        (state.g_s + shift).clamp(state.g_min_s, state.g_max_s)
    }
}

impl Device for Rram {
    type State = RramState;

    fn fabricate<R: Rng + ?Sized>(&self, rng: &mut R) -> RramState {
        let p = &self.params;
        let window_scale = lognormal_factor(p.d2d_window_sigma, rng);
        let step_scale = lognormal_factor(p.d2d_step_sigma, rng);
        let (g_min_s, g_max_s) = (p.g_min_s * window_scale, p.g_max_s * window_scale);
        let span = g_max_s - g_min_s;
        let stuck = cell::draw_stuck(p.p_stuck_lrs, p.p_stuck_hrs, rng);
        RramState {
            g_s: g_min_s,
            relax_z: 0.0,
            mode: RramMode::Analog,
            g_min_s,
            g_max_s,
            ltp: PulseResponse::new(span, f64::from(p.levels_ltp) / step_scale, self.a_norm_ltp),
            ltd: PulseResponse::new(span, f64::from(p.levels_ltd) / step_scale, self.a_norm_ltd),
            stuck,
            cycles: 0,
        }
    }

    fn program<R: Rng + ?Sized>(
        &self,
        state: &mut RramState,
        g_target_s: f64,
        rng: &mut R,
    ) -> WriteReport {
        state.mode = RramMode::Analog;
        let pulse = self.nominal_pulse(Polarity::Set);
        let energy_j = cell::joule_energy_j(&pulse, state.g_s);
        if state.stuck.is_none() {
            let span = state.g_max_s - state.g_min_s;
            let target = g_target_s.clamp(state.g_min_s, state.g_max_s);
            let noise = self.params.program_sigma * span * standard_normal(rng);
            state.g_s = (target + noise).clamp(state.g_min_s, state.g_max_s);
            state.relax_z = self.draw_relaxation(rng);
        }
        cell::one_pulse_write(&pulse, energy_j)
    }

    fn program_binary<R: Rng + ?Sized>(
        &self,
        state: &mut RramState,
        high: bool,
        rng: &mut R,
    ) -> WriteReport {
        self.program_binary_with_compliance(state, high, self.params.i_compliance_a, rng)
    }

    fn apply_pulse<R: Rng + ?Sized>(
        &self,
        state: &mut RramState,
        pulse: &Pulse,
        rng: &mut R,
    ) -> PulseReport {
        let energy_j = cell::joule_energy_j(pulse, self.conductance_at(state, 0.0));
        if state.stuck.is_some() || !bernoulli(self.switching_probability(pulse), rng) {
            return PulseReport {
                switched: false,
                energy_j,
            };
        }
        match (state.mode, pulse.polarity) {
            (RramMode::Analog, polarity) => self.analog_step(state, polarity, rng),
            (RramMode::Binary, Polarity::Set) => {
                state.cycles += 1;
                let i_cc = self.params.i_compliance_a;
                state.g_s = self.draw_lrs_conductance(i_cc, state.cycles, rng);
            }
            (RramMode::Binary, Polarity::Reset) => {
                state.g_s = self.draw_hrs_conductance(state.cycles, rng);
            }
        }
        PulseReport {
            switched: true,
            energy_j,
        }
    }

    fn nominal_pulse(&self, polarity: Polarity) -> Pulse {
        let p = &self.params;
        let set = (p.set_pulse_v, p.set_pulse_width_s);
        Pulse::by_polarity(polarity, set, (p.reset_pulse_v, p.reset_pulse_width_s))
    }

    fn window_levels(&self, polarity: Polarity) -> Option<f64> {
        Some(f64::from(match polarity {
            Polarity::Set => self.params.levels_ltp,
            Polarity::Reset => self.params.levels_ltd,
        }))
    }

    fn conductance_at(&self, state: &RramState, t_s: f64) -> f64 {
        match (state.stuck, state.mode) {
            (Some(stuck), _) => self.stuck_conductance(state, stuck),
            (None, RramMode::Analog) => self.relaxed_conductance(state, t_s),
            (None, RramMode::Binary) => state.g_s,
        }
    }

    fn read_noise_sigma(&self, state: &RramState, t_s: f64) -> f64 {
        self.params.read_noise_rel * self.conductance_at(state, t_s)
    }

    fn g_window(&self, state: &RramState) -> (f64, f64) {
        (state.g_min_s, state.g_max_s)
    }

    fn nominal_window(&self) -> (f64, f64) {
        (self.params.g_min_s, self.params.g_max_s)
    }

    fn set_stuck(&self, state: &mut RramState, stuck: Option<StuckAt>) {
        state.stuck = stuck;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NeuroSim's getParamA table: label 0.01 -> 126.268958, 1.00 -> 1.251653, 9.00 -> 0.022810.
    #[test]
    fn nonlinearity_label_reproduces_neurosim_table() {
        for (nl, a_table) in [(0.01, 126.268958), (1.0, 1.251653), (9.0, 0.022810)] {
            let a = nonlinearity_to_a_normalised(nl).unwrap();
            assert!(
                (a / a_table - 1.0).abs() < 1e-3,
                "NL {nl}: {a} vs {a_table}"
            );
        }
        assert!(nonlinearity_to_a_normalised(0.0).is_none());
    }

    /// The saturating response covers exactly the window in `levels` pulses and inverts.
    #[test]
    fn pulse_response_spans_the_window_and_inverts() {
        let r = PulseResponse::new(10.0, 100.0, nonlinearity_to_a_normalised(2.4));
        assert!((r.travel(100.0) - 10.0).abs() < 1e-9);
        assert!((r.pulses_for(r.travel(37.0)) - 37.0).abs() < 1e-9);
        assert!(
            r.step_from(0.0) > r.step_from(9.0),
            "steps shrink towards the bound"
        );
        let lin = PulseResponse::new(10.0, 100.0, None);
        assert!((lin.step_from(5.0) - 0.1).abs() < 1e-12);
    }

    /// A negative label is NeuroSim's curve for the opposite label sign seen from the other
    /// bound: with NeuroSim's G(x) = B (1 - exp(-x/A)) + G_min (x counted from G_min, A from
    /// the label 2.4), depression by p pulses from G_max travels G(P_max) - G(P_max - p),
    /// which the label -2.4 must reproduce; its steps grow towards the bound.
    #[test]
    fn negative_label_is_the_mirrored_accelerating_curve() {
        let (span, levels) = (10.0, 120.0);
        let a = nonlinearity_to_a_normalised(2.4).unwrap() * levels;
        assert_eq!(nonlinearity_to_a_normalised(-2.4), Some(-a / levels));
        let b = span / (1.0 - (-levels / a).exp());
        let neurosim = |x: f64| b * (1.0 - (-x / a).exp());
        let r = PulseResponse::new(span, levels, nonlinearity_to_a_normalised(-2.4));
        for p in [0.0, 1.0, 17.0, 60.0, 119.0, 120.0] {
            let expected = neurosim(levels) - neurosim(levels - p);
            assert!((r.travel(p) - expected).abs() < 1e-9, "p {p}");
        }
        assert!((r.pulses_for(r.travel(43.0)) - 43.0).abs() < 1e-9);
        assert!(r.step_from(0.0) < r.step_from(9.0), "steps grow");
    }
}
