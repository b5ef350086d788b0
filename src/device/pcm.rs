//! Phase-change memory (GST) model: the PCM statistical model of Nandakumar et al.
//! (ICECS 2019) and Joshi et al. (Nat. Commun. 2020), as used by IBM's aihwkit, plus a
//! gradual stochastic SET and an abrupt RESET for pulsed training.
//!
//! With `g = G_target / g_max` (natural logarithms):
//! - programming noise: `G_prog = G_target + N(0, sigma_prog(g))`,
//!   `sigma_prog = max(0, c0 + c1 g + c2 g^2)` (clamped at G >= 0, not at g_max, as in the
//!   reference model);
//! - drift: `G(t) = G_prog (t/t0)^-nu` for `t > t0`, and `G(t) = G_prog` for `t <= t0` (no
//!   drift is applied before the reference time t0, which the model takes as the end of
//!   programming); `nu = |N(mu_nu(g), sigma_nu(g))|` is drawn for each cell at every
//!   programming, `mu_nu = clip(a ln g + b, ...)`, `sigma_nu = clip(c ln g + d, ...)`;
//! - 1/f read noise: `sigma_read(t) = G(t) Q_s sqrt(ln((t + t_read) / (2 t_read)))`,
//!   `Q_s = min(q / g^e, Q_max)`; the logarithm is floored at 0, so reads within `t_read` of
//!   programming carry no 1/f noise.
//!
//! Pulses (Nandakumar et al., J. Appl. Phys. 2018): a SET pulse above the threshold voltage
//! crystallises part of the cell, raising G by a random increment of mean
//! `dG_set (1 - G/G_max,cell)` and standard deviation proportional to that mean (gradual,
//! stochastic, saturating at the cell's fully crystalline conductance). A RESET pulse above
//! its threshold melt-quenches the cell back near the amorphous level (abrupt). Every pulse
//! re-programs the cell: its drift exponent is redrawn and its drift clock restarts.

use super::cell;
use super::params::{
    ParamError, all_non_negative, all_positive, non_negative, ordered, positive, stuck_fractions,
};
use super::sampling::{lognormal_factor, standard_normal};
use super::{Device, Polarity, Pulse, PulseReport, StuckAt, WriteReport};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Smallest normalised target used in the logarithms of the statistical model (aihwkit's clip).
pub const G_NORM_FLOOR: f64 = 1e-7;

/// Parameters of the PCM model (one preset).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcmParams {
    /// Lower end of the programmable window (amorphous), siemens.
    pub g_min_s: f64,
    /// Normalising conductance of the statistical model and nominal fully crystalline
    /// (maximum) conductance, siemens.
    pub g_max_s: f64,
    /// Programming noise polynomial, constant term, siemens.
    pub prog_noise_c0_s: f64,
    /// Programming noise polynomial, linear term (per unit g), siemens.
    pub prog_noise_c1_s: f64,
    /// Programming noise polynomial, quadratic term (per unit g^2), siemens.
    pub prog_noise_c2_s: f64,
    /// Multiplier of the programming noise (1 = published model, 0 = none).
    pub prog_noise_scale: f64,
    /// Drift reference time t0, seconds.
    pub t0_s: f64,
    /// Slope a of the mean drift exponent `mu_nu = a ln g + b`.
    pub nu_mean_slope: f64,
    /// Offset b of the mean drift exponent.
    pub nu_mean_offset: f64,
    /// Lower clip of the mean drift exponent.
    pub nu_mean_min: f64,
    /// Upper clip of the mean drift exponent.
    pub nu_mean_max: f64,
    /// Slope c of the drift-exponent spread `sigma_nu = c ln g + d`.
    pub nu_sigma_slope: f64,
    /// Offset d of the drift-exponent spread.
    pub nu_sigma_offset: f64,
    /// Lower clip of the drift-exponent spread.
    pub nu_sigma_min: f64,
    /// Upper clip of the drift-exponent spread.
    pub nu_sigma_max: f64,
    /// Multiplier of every drawn drift exponent (1 = published model, 0 = no drift).
    pub drift_scale: f64,
    /// Read duration t_read of the 1/f noise model, seconds.
    pub t_read_s: f64,
    /// Coefficient q of `Q_s = min(q / g^e, Q_max)`.
    pub read_noise_q_coeff: f64,
    /// Exponent e of `Q_s`.
    pub read_noise_q_exponent: f64,
    /// Upper clip `Q_max` of `Q_s`.
    pub read_noise_q_max: f64,
    /// Multiplier of the 1/f read noise (1 = published model, 0 = none).
    pub read_noise_scale: f64,
    /// Mean conductance increment of a SET pulse on a fully amorphous cell, siemens.
    pub set_step_mean_s: f64,
    /// Standard deviation of a SET increment relative to its mean.
    pub set_step_sigma_rel: f64,
    /// Device-to-device spread of the fully crystalline conductance (lognormal log-sigma).
    pub d2d_g_max_sigma: f64,
    /// Mean conductance after a RESET pulse, siemens.
    pub g_reset_s: f64,
    /// Standard deviation of the conductance after a RESET pulse, siemens.
    pub g_reset_sigma_s: f64,
    /// Smallest SET pulse amplitude that crystallises (threshold switching), volts.
    pub set_threshold_v: f64,
    /// Smallest RESET pulse amplitude that melts the cell, volts.
    pub reset_threshold_v: f64,
    /// Amplitude of the nominal SET pulse, volts.
    pub set_pulse_v: f64,
    /// Width of the nominal SET pulse, seconds.
    pub set_pulse_width_s: f64,
    /// Amplitude of the nominal RESET pulse, volts.
    pub reset_pulse_v: f64,
    /// Width of the nominal RESET pulse, seconds.
    pub reset_pulse_width_s: f64,
    /// Probability that a cell is stuck fully crystalline (high conductance) at fabrication.
    pub p_stuck_lrs: f64,
    /// Probability that a cell is stuck amorphous (low conductance) at fabrication.
    pub p_stuck_hrs: f64,
}

impl PcmParams {
    /// Check every field; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ParamError> {
        non_negative("g_min_s", self.g_min_s)?;
        positive("g_max_s", self.g_max_s)?;
        ordered("g_min_s", self.g_min_s, "g_max_s", self.g_max_s)?;
        for (field, v) in [
            ("prog_noise_c0_s", self.prog_noise_c0_s),
            ("prog_noise_c1_s", self.prog_noise_c1_s),
            ("prog_noise_c2_s", self.prog_noise_c2_s),
            ("nu_mean_slope", self.nu_mean_slope),
            ("nu_mean_offset", self.nu_mean_offset),
            ("nu_sigma_slope", self.nu_sigma_slope),
            ("nu_sigma_offset", self.nu_sigma_offset),
        ] {
            super::params::finite(field, v)?;
        }
        all_non_negative(&[
            ("prog_noise_scale", self.prog_noise_scale),
            ("nu_mean_min", self.nu_mean_min),
            ("nu_sigma_min", self.nu_sigma_min),
            ("drift_scale", self.drift_scale),
            ("read_noise_q_exponent", self.read_noise_q_exponent),
            ("read_noise_q_coeff", self.read_noise_q_coeff),
            ("read_noise_q_max", self.read_noise_q_max),
            ("read_noise_scale", self.read_noise_scale),
            ("set_step_mean_s", self.set_step_mean_s),
            ("set_step_sigma_rel", self.set_step_sigma_rel),
            ("d2d_g_max_sigma", self.d2d_g_max_sigma),
            ("g_reset_s", self.g_reset_s),
            ("g_reset_sigma_s", self.g_reset_sigma_s),
            ("set_threshold_v", self.set_threshold_v),
            ("reset_threshold_v", self.reset_threshold_v),
        ])?;
        non_negative("nu_mean_max", self.nu_mean_max)?;
        non_negative("nu_sigma_max", self.nu_sigma_max)?;
        if self.nu_mean_max < self.nu_mean_min {
            ordered(
                "nu_mean_min",
                self.nu_mean_min,
                "nu_mean_max",
                self.nu_mean_max,
            )?;
        }
        if self.nu_sigma_max < self.nu_sigma_min {
            ordered(
                "nu_sigma_min",
                self.nu_sigma_min,
                "nu_sigma_max",
                self.nu_sigma_max,
            )?;
        }
        all_positive(&[
            ("t0_s", self.t0_s),
            ("t_read_s", self.t_read_s),
            ("set_pulse_v", self.set_pulse_v),
            ("set_pulse_width_s", self.set_pulse_width_s),
            ("reset_pulse_v", self.reset_pulse_v),
            ("reset_pulse_width_s", self.reset_pulse_width_s),
        ])?;
        stuck_fractions(self.p_stuck_lrs, self.p_stuck_hrs)
    }
}

/// One PCM cell.
#[derive(Clone, Debug, PartialEq)]
pub struct PcmState {
    /// Conductance right after the last programming (before drift), siemens.
    pub g_prog_s: f64,
    /// Normalised target `g = G_target / g_max` of the last programming (sets nu and Q_s).
    pub g_target_norm: f64,
    /// Drift exponent drawn at the last programming.
    pub nu: f64,
    /// This cell's fully crystalline (saturation) conductance, siemens.
    pub g_max_s: f64,
    /// Stuck-at fault, if any.
    pub stuck: Option<StuckAt>,
}

/// The PCM model.
#[derive(Clone, Debug, PartialEq)]
pub struct Pcm {
    /// The model's parameters.
    pub params: PcmParams,
}

impl Pcm {
    /// A model with these (already validated) parameters.
    pub fn new(params: PcmParams) -> Self {
        Self { params }
    }

    /// Normalised target `g = G/g_max`, floored at [`G_NORM_FLOOR`].
    pub fn normalised(&self, g_s: f64) -> f64 {
        (g_s / self.params.g_max_s).max(G_NORM_FLOOR)
    }

    /// Standard deviation of the programming noise for target `g_target_s`, siemens
    /// (`prog_noise_scale * max(0, c0 + c1 g + c2 g^2)`).
    pub fn programming_sigma_s(&self, g_target_s: f64) -> f64 {
        let p = &self.params;
        let g = (g_target_s / p.g_max_s).max(0.0);
        let sigma = p.prog_noise_c0_s + p.prog_noise_c1_s * g + p.prog_noise_c2_s * g * g;
        p.prog_noise_scale * sigma.max(0.0)
    }

    /// Mean and standard deviation `(mu_nu, sigma_nu)` of the normal distribution whose
    /// absolute value is the drift exponent, for target `g_target_s` (before `drift_scale`).
    pub fn drift_exponent_stats(&self, g_target_s: f64) -> (f64, f64) {
        let p = &self.params;
        let ln_g = self.normalised(g_target_s).ln();
        let mu = (p.nu_mean_slope * ln_g + p.nu_mean_offset).clamp(p.nu_mean_min, p.nu_mean_max);
        let sigma =
            (p.nu_sigma_slope * ln_g + p.nu_sigma_offset).clamp(p.nu_sigma_min, p.nu_sigma_max);
        (mu, sigma)
    }

    /// Expected drift exponent `E|N(mu, sigma)| * drift_scale` (folded normal mean).
    pub fn mean_drift_exponent(&self, g_target_s: f64) -> f64 {
        let (mu, sigma) = self.drift_exponent_stats(g_target_s);
        self.params.drift_scale * folded_normal_mean(mu, sigma)
    }

    /// Read-noise factor `Q_s = read_noise_scale * min(q / g^e, Q_max)` for a normalised target.
    pub fn read_noise_q(&self, g_target_norm: f64) -> f64 {
        let p = &self.params;
        let g = g_target_norm.max(G_NORM_FLOOR);
        p.read_noise_scale
            * (p.read_noise_q_coeff / g.powf(p.read_noise_q_exponent)).min(p.read_noise_q_max)
    }

    /// Drift factor `(t/t0)^-nu` for `t > t0`, 1 otherwise.
    pub fn drift_factor(&self, nu: f64, t_s: f64) -> f64 {
        cell::power_law_drift_factor(nu, t_s, self.params.t0_s)
    }

    /// Mean SET increment of a cell at conductance `g_s` with saturation `g_max_cell_s`, siemens.
    pub fn mean_set_step_s(&self, g_s: f64, g_max_cell_s: f64) -> f64 {
        self.params.set_step_mean_s * (1.0 - g_s / g_max_cell_s).max(0.0)
    }

    /// Record a new programmed conductance: new drift exponent, drift clock restarted.
    fn reprogram<R: Rng + ?Sized>(
        &self,
        state: &mut PcmState,
        g_prog_s: f64,
        g_target_s: f64,
        rng: &mut R,
    ) {
        let (mu, sigma) = self.drift_exponent_stats(g_target_s);
        state.g_prog_s = g_prog_s;
        state.g_target_norm = self.normalised(g_target_s);
        state.nu = self.params.drift_scale * (mu + sigma * standard_normal(rng)).abs();
    }

    fn stuck_conductance(&self, state: &PcmState, stuck: StuckAt) -> f64 {
        match stuck {
            StuckAt::Lrs => state.g_max_s,
            StuckAt::Hrs => self.params.g_min_s,
        }
    }
}

/// Mean of `|X|` for `X ~ N(mu, sigma)`.
pub fn folded_normal_mean(mu: f64, sigma: f64) -> f64 {
    if sigma == 0.0 {
        return mu.abs();
    }
    let z = mu / sigma;
    sigma * (2.0 / std::f64::consts::PI).sqrt() * (-0.5 * z * z).exp()
        + mu * (1.0 - 2.0 * standard_normal_cdf(-z))
}

/// Standard normal cumulative distribution (Abramowitz & Stegun 7.1.26 erf, |error| < 1.5e-7).
fn standard_normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

impl Device for Pcm {
    type State = PcmState;

    fn fabricate<R: Rng + ?Sized>(&self, rng: &mut R) -> PcmState {
        let p = &self.params;
        let g_max_s = p.g_max_s * lognormal_factor(p.d2d_g_max_sigma, rng);
        let stuck = cell::draw_stuck(p.p_stuck_lrs, p.p_stuck_hrs, rng);
        let mut state = PcmState {
            g_prog_s: p.g_min_s,
            g_target_norm: self.normalised(p.g_min_s),
            nu: 0.0,
            g_max_s,
            stuck,
        };
        self.reprogram(&mut state, p.g_min_s, p.g_min_s, rng);
        state
    }

    fn program<R: Rng + ?Sized>(
        &self,
        state: &mut PcmState,
        g_target_s: f64,
        rng: &mut R,
    ) -> WriteReport {
        let pulse = self.nominal_pulse(Polarity::Set);
        let energy_j = cell::joule_energy_j(&pulse, state.g_prog_s);
        if state.stuck.is_none() {
            let target = g_target_s.clamp(self.params.g_min_s, state.g_max_s);
            let noise = self.programming_sigma_s(target) * standard_normal(rng);
            self.reprogram(state, (target + noise).max(0.0), target, rng);
        }
        cell::one_pulse_write(&pulse, energy_j)
    }

    fn apply_pulse<R: Rng + ?Sized>(
        &self,
        state: &mut PcmState,
        pulse: &Pulse,
        rng: &mut R,
    ) -> PulseReport {
        let p = &self.params;
        let energy_j = cell::joule_energy_j(pulse, state.g_prog_s);
        let threshold = match pulse.polarity {
            Polarity::Set => p.set_threshold_v,
            Polarity::Reset => p.reset_threshold_v,
        };
        if state.stuck.is_some() || pulse.amplitude_v < threshold {
            return PulseReport {
                switched: false,
                energy_j,
            };
        }
        let g_new = match pulse.polarity {
            Polarity::Set => {
                let g = state.g_prog_s;
                let mean = self.mean_set_step_s(g, state.g_max_s);
                let step = mean * (1.0 + p.set_step_sigma_rel * standard_normal(rng));
                (g + step).clamp(0.0, state.g_max_s.max(g))
            }
            Polarity::Reset => (p.g_reset_s + p.g_reset_sigma_s * standard_normal(rng)).abs(),
        };
        self.reprogram(state, g_new, g_new, rng);
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

    fn conductance_at(&self, state: &PcmState, t_s: f64) -> f64 {
        match state.stuck {
            Some(stuck) => self.stuck_conductance(state, stuck),
            None => state.g_prog_s * self.drift_factor(state.nu, t_s),
        }
    }

    fn read_noise_sigma(&self, state: &PcmState, t_s: f64) -> f64 {
        if state.stuck.is_some() {
            return 0.0;
        }
        let t_read = self.params.t_read_s;
        let log_term = ((t_s.max(0.0) + t_read) / (2.0 * t_read)).ln().max(0.0);
        self.conductance_at(state, t_s) * self.read_noise_q(state.g_target_norm) * log_term.sqrt()
    }

    fn g_window(&self, state: &PcmState) -> (f64, f64) {
        (self.params.g_min_s, state.g_max_s)
    }

    fn nominal_window(&self) -> (f64, f64) {
        (self.params.g_min_s, self.params.g_max_s)
    }

    fn set_stuck(&self, state: &mut PcmState, stuck: Option<StuckAt>) {
        state.stuck = stuck;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_and_folded_mean_are_right() {
        assert!((standard_normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((standard_normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        // E|N(0,1)| = sqrt(2/pi).
        assert!((folded_normal_mean(0.0, 1.0) - (2.0 / std::f64::consts::PI).sqrt()).abs() < 1e-7);
        // Far from zero the fold does nothing.
        assert!((folded_normal_mean(1.0, 0.01) - 1.0).abs() < 1e-9);
    }
}
