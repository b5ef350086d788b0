//! A true random bit generator from the stochastic switching of STT magnetic tunnel junctions.
//!
//! One bit takes one cycle: the junction starts antiparallel (AP); a SET pulse whose
//! amplitude sits at the junction's 50 % switching point switches it to parallel (P) with
//! probability `p` (thermal/precessional switching of [`Mram`]); a read senses the state
//! (bit = 1 for P, by comparison with a reference conductance between the two states); a
//! RESET pulse brings the junction back to AP, either after every bit
//! ([`ResetPolicy::Always`]) or only after a 1 ([`ResetPolicy::IfSwitched`], which saves
//! energy), optionally verified by a read and repeated until the junction reads AP. This is
//! the "spin dice" scheme (Fukushima et al., Appl. Phys. Express 2014) used as the random
//! source of stochastic-computing Bayesian hardware (Vincent et al., IEEE TBioCAS 2015).
//!
//! Imperfections come from the device model: device-to-device spread of `Ic0` and the
//! resistances moves each junction's 50 % point, so a shared pulse gives biased bits; a read
//! can switch an AP junction to P (read disturb) and a RESET pulse can fail, which makes
//! the next cycle start in P (a forced 1). The start state of a cycle is a two-state Markov
//! chain (AP or P), so the probability of a 1 is known in closed form
//! ([`MramBitGenerator::model_probability_of_one`]). A calibration loop
//! ([`calibrate_amplitude`]) trims the pulse amplitude per junction by bisection on measured
//! bit counts, quantised to the resolution of the pulse DAC.
//!
//! Energy: pulses dissipate `I^2 R t` in the junction (the model's [`PulseReport`]); a read
//! costs `V_read^2 t_read / (R + R_access)` drawn from the read supply. Time per bit is the
//! sum of pulse widths and read times (no idle time between operations).
//!
//! Everything here takes a built [`Mram`] model and its fabricated junctions; the study that
//! loads the preset by name, sweeps and draws the figures is `studies::mram_rng`.
//!
//! [`PulseReport`]: crate::device::PulseReport

use crate::device::mram::{Mram, MramState};
use crate::device::{Device, Polarity, Pulse};
use crate::rng::{MRAM_FABRICATION_STREAM, stream};
use anyhow::{Result, bail, ensure};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Highest amplitude searched for a junction's 50 % switching point, volts.
const MAX_SEARCH_AMPLITUDE_V: f64 = 5.0;
/// Bisection steps of the analytic 50 % point search (resolution 5 V / 2^60).
const ANALYTIC_BISECTION_STEPS: usize = 60;
/// Switching probability the generator aims at.
const TARGET_PROBABILITY: f64 = 0.5;

/// When the generator applies its RESET pulse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetPolicy {
    /// After every bit (a RESET on an AP junction does nothing but costs energy).
    Always,
    /// Only after a 1 was read.
    IfSwitched,
}

/// How one junction generates bits.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorConfig {
    /// Width of the stochastic SET pulse, seconds.
    pub pulse_width_s: f64,
    /// When to apply the RESET pulse.
    pub reset: ResetPolicy,
    /// Read after each RESET and repeat it until the junction reads AP.
    pub verify_reset: bool,
    /// Most RESET pulses per cycle when verifying.
    pub max_reset_attempts: u32,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            pulse_width_s: 10e-9,
            reset: ResetPolicy::IfSwitched,
            verify_reset: true,
            max_reset_attempts: 16,
        }
    }
}

impl GeneratorConfig {
    /// Check every field; `prefix` names the table in messages.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let width = self.pulse_width_s;
        ensure!(
            width.is_finite() && width > 0.0,
            "{prefix}.pulse_width_s: must be > 0 (got {width})"
        );
        ensure!(
            self.max_reset_attempts >= 1,
            "{prefix}.max_reset_attempts: must be >= 1"
        );
        Ok(())
    }
}

/// The per-junction calibration loop: bisection of the pulse amplitude on measured bits.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalibrationConfig {
    /// Bisection steps (each halves the amplitude interval).
    pub steps: u32,
    /// Bits generated per step to decide whether the bias is above or below 1/2.
    pub bits_per_step: u32,
    /// Resolution of the pulse-amplitude DAC, volts (0: continuous).
    pub dac_step_v: f64,
    /// Half-width of the searched interval as a fraction of the nominal 50 % amplitude.
    pub search_span: f64,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        Self {
            steps: 10,
            bits_per_step: 256,
            dac_step_v: 1e-3,
            search_span: 0.3,
        }
    }
}

impl CalibrationConfig {
    /// Check every field; `prefix` names the table in messages.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        ensure!(self.steps >= 1, "{prefix}.steps: must be >= 1");
        ensure!(
            self.bits_per_step >= 1,
            "{prefix}.bits_per_step: must be >= 1"
        );
        ensure!(
            self.dac_step_v.is_finite() && self.dac_step_v >= 0.0,
            "{prefix}.dac_step_v: must be >= 0 (0 = continuous amplitude)"
        );
        ensure!(
            self.search_span > 0.0 && self.search_span < 1.0,
            "{prefix}.search_span: must be in (0, 1)"
        );
        Ok(())
    }
}

/// Counts and costs of generated bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BitLedger {
    /// Bits generated.
    pub bits: u64,
    /// Bits equal to 1.
    pub ones: u64,
    /// Pulses applied (SET and RESET).
    pub pulses: u64,
    /// Reads performed (bit reads and verify reads).
    pub reads: u64,
    /// Energy of pulses and reads, joules.
    pub energy_j: f64,
    /// Time of pulses and reads, seconds.
    pub time_s: f64,
}

impl BitLedger {
    /// Accumulate another ledger.
    pub fn add(&mut self, other: &BitLedger) {
        self.bits += other.bits;
        self.ones += other.ones;
        self.pulses += other.pulses;
        self.reads += other.reads;
        self.energy_j += other.energy_j;
        self.time_s += other.time_s;
    }

    /// Fraction of ones (NaN before the first bit).
    pub fn fraction_of_ones(&self) -> f64 {
        self.ones as f64 / self.bits as f64
    }
}

/// One junction used as a random bit generator.
#[derive(Clone, Debug)]
pub struct MramBitGenerator<'a> {
    model: &'a Mram,
    state: MramState,
    set_pulse: Pulse,
    config: GeneratorConfig,
    ledger: BitLedger,
}

impl<'a> MramBitGenerator<'a> {
    /// A generator on junction `state` (set to AP; that first write is not counted) with a
    /// SET pulse of `amplitude_v`.
    pub fn new(
        model: &'a Mram,
        mut state: MramState,
        amplitude_v: f64,
        config: GeneratorConfig,
    ) -> Self {
        if state.stuck.is_none() {
            state.parallel = false;
        }
        Self {
            model,
            state,
            set_pulse: Pulse {
                polarity: Polarity::Set,
                amplitude_v,
                width_s: config.pulse_width_s,
            },
            config,
            ledger: BitLedger::default(),
        }
    }

    /// The junction (its fabricated parameters and present state).
    pub fn state(&self) -> &MramState {
        &self.state
    }

    /// The counts and costs so far.
    pub fn ledger(&self) -> &BitLedger {
        &self.ledger
    }

    /// Amplitude of the stochastic SET pulse, volts.
    pub fn amplitude_v(&self) -> f64 {
        self.set_pulse.amplitude_v
    }

    /// Generate one bit: SET pulse, read, RESET per the policy.
    pub fn next_bit<R: Rng + ?Sized>(&mut self, rng: &mut R) -> bool {
        self.pulse(self.set_pulse, rng);
        let bit = self.read_is_parallel(rng);
        let reset = match self.config.reset {
            ResetPolicy::Always => true,
            ResetPolicy::IfSwitched => bit,
        };
        if reset {
            self.reset(rng);
        }
        self.ledger.bits += 1;
        self.ledger.ones += u64::from(bit);
        bit
    }

    /// Fill `out` with bits.
    pub fn fill<R: Rng + ?Sized>(&mut self, out: &mut [bool], rng: &mut R) {
        for b in out {
            *b = self.next_bit(rng);
        }
    }

    /// Probability of a 1 in the stationary regime, from the device model.
    ///
    /// The start state of a cycle is a two-state Markov chain: `a` = P(AP -> P) and
    /// `s` = P(P -> P) from one cycle start to the next, stationary `pi_P = a / (1 + a - s)`;
    /// a cycle that starts in P gives a 1, one that starts in AP gives a 1 with the SET
    /// switching probability `p`. With `d` the read-disturb probability of an AP read and `f`
    /// the failure probability of the RESET pulse on a P junction:
    /// verified resets end every cycle with a read of an AP junction, so `a = s = d`;
    /// unverified `IfSwitched`: `a = p f + (1 - p) d`, `s = f`; unverified `Always`:
    /// `a = (p + (1 - p) d) f`, `s = f`. Exact for verified resets up to `f^max_attempts`.
    pub fn model_probability_of_one(&self) -> f64 {
        let mut ap = self.state.clone();
        ap.parallel = false;
        let mut p_state = self.state.clone();
        p_state.parallel = true;
        let p = self.model.switching_probability(&ap, &self.set_pulse);
        let d = self.model.read_disturb_probability(&ap);
        let reset_pulse = self.model.nominal_pulse(Polarity::Reset);
        let f = 1.0 - self.model.switching_probability(&p_state, &reset_pulse);
        let (a, s) = match (self.config.verify_reset, self.config.reset) {
            (true, _) => (d, d),
            (false, ResetPolicy::IfSwitched) => (p * f + (1.0 - p) * d, f),
            (false, ResetPolicy::Always) => ((p + (1.0 - p) * d) * f, f),
        };
        let pi_p = if a == 0.0 { 0.0 } else { a / (1.0 + a - s) };
        (1.0 - pi_p) * p + pi_p
    }

    fn pulse<R: Rng + ?Sized>(&mut self, pulse: Pulse, rng: &mut R) {
        let report = self.model.apply_pulse(&mut self.state, &pulse, rng);
        self.ledger.pulses += 1;
        self.ledger.energy_j += report.energy_j;
        self.ledger.time_s += pulse.width_s;
    }

    /// Sense the junction (before any read disturb) against the reference conductance.
    fn read_is_parallel<R: Rng + ?Sized>(&mut self, rng: &mut R) -> bool {
        let p = &self.model.params;
        let path_r_ohm = self.state.resistance_ohm() + p.r_access_ohm;
        self.ledger.energy_j += p.v_read_v * p.v_read_v * p.t_read_s / path_r_ohm;
        self.ledger.time_s += p.t_read_s;
        self.ledger.reads += 1;
        let g_s = self.model.read(&mut self.state, 0.0, rng);
        g_s > reference_conductance_s(self.model)
    }

    fn reset<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        let pulse = self.model.nominal_pulse(Polarity::Reset);
        let attempts = if self.config.verify_reset {
            self.config.max_reset_attempts
        } else {
            1
        };
        for _ in 0..attempts {
            self.pulse(pulse, rng);
            if !self.config.verify_reset || !self.read_is_parallel(rng) {
                break;
            }
        }
    }
}

/// Sense-amplifier reference: the geometric mean of the nominal P and AP conductances.
pub fn reference_conductance_s(model: &Mram) -> f64 {
    let (g_ap, g_p) = model.nominal_window();
    (g_ap * g_p).sqrt()
}

/// The SET amplitude at which an AP junction `state` switches with probability 1/2 in a
/// pulse of `width_s`, volts (bisection on the analytic switching probability).
pub fn fifty_percent_amplitude_v(model: &Mram, state: &MramState, width_s: f64) -> Result<f64> {
    let mut ap = state.clone();
    ap.parallel = false;
    ap.stuck = None;
    let probability = |v: f64| {
        let pulse = Pulse {
            polarity: Polarity::Set,
            amplitude_v: v,
            width_s,
        };
        model.switching_probability(&ap, &pulse)
    };
    if probability(MAX_SEARCH_AMPLITUDE_V) < TARGET_PROBABILITY {
        bail!(
            "the junction does not reach 50 % switching below {MAX_SEARCH_AMPLITUDE_V} V with a \
             {width_s} s pulse: lengthen generator.pulse_width_s"
        );
    }
    let (mut lo, mut hi) = (0.0, MAX_SEARCH_AMPLITUDE_V);
    for _ in 0..ANALYTIC_BISECTION_STEPS {
        let mid = 0.5 * (lo + hi);
        if probability(mid) < TARGET_PROBABILITY {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(0.5 * (lo + hi))
}

/// Round `v` to the DAC grid `step_v` (no rounding for 0).
fn quantise_amplitude(v: f64, step_v: f64) -> f64 {
    if step_v > 0.0 {
        (v / step_v).round() * step_v
    } else {
        v
    }
}

/// Trim the SET amplitude of junction `state` by bisection on measured bit counts, starting
/// from the interval `v_nominal (1 +- search_span)`. Returns the calibrated amplitude
/// (quantised to the DAC step) and the cost of the calibration bits.
pub fn calibrate_amplitude<R: Rng + ?Sized>(
    model: &Mram,
    state: &MramState,
    v_nominal: f64,
    generator: GeneratorConfig,
    calibration: &CalibrationConfig,
    rng: &mut R,
) -> (f64, BitLedger) {
    let mut lo = v_nominal * (1.0 - calibration.search_span);
    let mut hi = v_nominal * (1.0 + calibration.search_span);
    let mut cost = BitLedger::default();
    for _ in 0..calibration.steps {
        let mid = quantise_amplitude(0.5 * (lo + hi), calibration.dac_step_v);
        let mut generator = MramBitGenerator::new(model, state.clone(), mid, generator);
        for _ in 0..calibration.bits_per_step {
            generator.next_bit(rng);
        }
        let ledger = generator.ledger();
        if 2 * ledger.ones > ledger.bits {
            hi = mid;
        } else {
            lo = mid;
        }
        cost.add(ledger);
    }
    (
        quantise_amplitude(0.5 * (lo + hi), calibration.dac_step_v),
        cost,
    )
}

/// Autocorrelation of a 0/1 sequence at lags 1..=max_lag (0 for a constant sequence).
pub fn autocorrelation(bits: &[bool], max_lag: usize) -> Vec<f64> {
    let n = bits.len();
    let x: Vec<f64> = bits.iter().map(|&b| f64::from(u8::from(b))).collect();
    let mean = x.iter().sum::<f64>() / n as f64;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    (1..=max_lag)
        .map(|lag| {
            if var == 0.0 || lag >= n {
                return 0.0;
            }
            let cov = (0..n - lag)
                .map(|i| (x[i] - mean) * (x[i + lag] - mean))
                .sum::<f64>();
            cov / ((n - lag) as f64 * var)
        })
        .collect()
}

/// Fabricate `n` junctions from stream `(seed, [MRAM_FABRICATION_STREAM, id, i])`.
pub fn fabricate_junctions(model: &Mram, seed: u64, id: u64, n: usize) -> Vec<MramState> {
    (0..n)
        .map(|i| model.fabricate(&mut stream(seed, &[MRAM_FABRICATION_STREAM, id, i as u64])))
        .collect()
}
