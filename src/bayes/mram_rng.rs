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
//! [`PulseReport`]: crate::device::PulseReport

use super::{require, require_positive};
use crate::device::mram::{Mram, MramState};
use crate::device::{AnyDevice, Device, Polarity, Pulse, preset};
use crate::output::plot::{Figure, Series, Style, save};
use crate::rng::stream;
use anyhow::{Context, Result, bail};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

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
        require_positive(&format!("{prefix}.pulse_width_s"), self.pulse_width_s)?;
        require(
            self.max_reset_attempts >= 1,
            &format!("{prefix}.max_reset_attempts"),
            "must be >= 1",
        )
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
        require(self.steps >= 1, &format!("{prefix}.steps"), "must be >= 1")?;
        require(
            self.bits_per_step >= 1,
            &format!("{prefix}.bits_per_step"),
            "must be >= 1",
        )?;
        require(
            self.dac_step_v.is_finite() && self.dac_step_v >= 0.0,
            &format!("{prefix}.dac_step_v"),
            "must be >= 0 (0 = continuous amplitude)",
        )?;
        require(
            self.search_span > 0.0 && self.search_span < 1.0,
            &format!("{prefix}.search_span"),
            "must be in (0, 1)",
        )
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

/// The MRAM random-bit experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MramRngConfig {
    /// Master seed of every random stream.
    pub seed: u64,
    /// Device preset name or file (must be an MTJ model).
    pub device: String,
    /// Preset parameter overrides, `name = value`.
    pub overrides: toml::Table,
    /// How each junction generates bits.
    pub generator: GeneratorConfig,
    /// The per-junction calibration loop.
    pub calibration: CalibrationConfig,
    /// Junctions fabricated (device-to-device spread).
    pub devices: usize,
    /// Bits measured per junction and per setting.
    pub bits_per_device: usize,
    /// SET amplitudes of the bias sweep, as multiples of the nominal 50 % amplitude.
    pub amplitude_factors: Vec<f64>,
    /// Read voltages of the read-disturb sweep, volts.
    pub read_voltages_v: Vec<f64>,
    /// Largest lag of the bit autocorrelation.
    pub max_lag: usize,
}

impl Default for MramRngConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            device: "stt_mram".to_string(),
            overrides: toml::Table::new(),
            generator: GeneratorConfig::default(),
            calibration: CalibrationConfig::default(),
            devices: 64,
            bits_per_device: 4096,
            amplitude_factors: (0..=20).map(|i| 0.9 + 0.01 * f64::from(i)).collect(),
            read_voltages_v: vec![0.1, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6],
            max_lag: 8,
        }
    }
}

impl MramRngConfig {
    /// Check every field.
    pub fn validate(&self) -> Result<()> {
        self.generator.validate("generator")?;
        self.calibration.validate("calibration")?;
        require(
            self.devices >= 2,
            "devices",
            "must be >= 2 (a spread needs two junctions)",
        )?;
        require(
            self.bits_per_device > self.max_lag,
            "bits_per_device",
            "must exceed max_lag",
        )?;
        require(self.max_lag >= 1, "max_lag", "must be >= 1")?;
        require(
            !self.amplitude_factors.is_empty(),
            "amplitude_factors",
            "must not be empty",
        )?;
        for &f in &self.amplitude_factors {
            require_positive("amplitude_factors", f)?;
        }
        require(
            !self.read_voltages_v.is_empty(),
            "read_voltages_v",
            "must not be empty",
        )?;
        for &v in &self.read_voltages_v {
            require_positive("read_voltages_v", v)?;
        }
        Ok(())
    }

    /// The MTJ model of `device` with `overrides`.
    pub fn model(&self) -> Result<Mram> {
        load_mram(&self.device, &self.overrides).context("device")
    }
}

/// Load an MTJ preset, failing with a clear message for other models.
pub fn load_mram(device: &str, overrides: &toml::Table) -> Result<Mram> {
    match preset::load(device, overrides)? {
        AnyDevice::Mram(m) => Ok(m),
        other => bail!(
            "device `{device}` is a {} model; the MRAM random bit generator needs an MTJ \
             (model = \"mram\", e.g. the stt_mram preset)",
            other.model_name()
        ),
    }
}

/// Bias of generated bits at one SET amplitude.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AmplitudePoint {
    /// SET amplitude, volts.
    pub amplitude_v: f64,
    /// Model probability of a 1 for the nominal junction.
    pub model_p_nominal: f64,
    /// Model probability of a 1 averaged over the fabricated junctions.
    pub model_p_mean: f64,
    /// Measured fraction of ones averaged over junctions.
    pub measured_p_mean: f64,
    /// Standard deviation of the measured fraction across junctions.
    pub measured_p_std: f64,
}

/// Statistics of a population of junctions at their pulse amplitudes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PopulationStats {
    /// SET amplitude of each junction, volts.
    pub amplitude_v: Vec<f64>,
    /// Model probability of a 1 of each junction.
    pub model_p: Vec<f64>,
    /// Measured fraction of ones of each junction.
    pub measured_p: Vec<f64>,
    /// Mean of the measured fractions.
    pub measured_p_mean: f64,
    /// Standard deviation of the measured fractions across junctions.
    pub measured_p_std: f64,
    /// Largest |measured - 1/2| over junctions.
    pub max_abs_bias: f64,
    /// Bit autocorrelation at lags 1..=max_lag, averaged over junctions.
    pub autocorrelation: Vec<f64>,
    /// Standard error of that average for independent bits, `1 / sqrt(junctions x bits)`.
    pub autocorrelation_standard_error: f64,
    /// Bits per second of one junction.
    pub bits_per_s: f64,
    /// Energy per bit, joules.
    pub energy_per_bit_j: f64,
}

/// Bias under read disturb at one read voltage (nominal junction).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReadDisturbPoint {
    /// Read voltage, volts.
    pub v_read_v: f64,
    /// Probability that one read switches an AP junction to P.
    pub disturb_probability: f64,
    /// Model probability of a 1 at the nominal 50 % amplitude.
    pub model_p: f64,
    /// Measured fraction of ones.
    pub measured_p: f64,
    /// Bits measured.
    pub bits: u64,
}

/// Everything the MRAM random-bit figures need.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MramRngReport {
    /// SET amplitude at which the nominal junction switches with probability 1/2, volts.
    pub v50_nominal_v: f64,
    /// SET pulse width, seconds.
    pub pulse_width_s: f64,
    /// Bias versus SET amplitude.
    pub amplitude_sweep: Vec<AmplitudePoint>,
    /// All junctions at the nominal amplitude.
    pub uncalibrated: PopulationStats,
    /// Each junction at its calibrated amplitude.
    pub calibrated: PopulationStats,
    /// Calibration cost per junction: energy, joules.
    pub calibration_energy_per_device_j: f64,
    /// Calibration cost per junction: time, seconds.
    pub calibration_time_per_device_s: f64,
    /// Bias versus read voltage.
    pub read_disturb: Vec<ReadDisturbPoint>,
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

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// Run every junction at its amplitude and collect the population statistics.
fn population(
    model: &Mram,
    junctions: &[MramState],
    amplitudes_v: &[f64],
    config: &MramRngConfig,
    stream_id: u64,
) -> PopulationStats {
    let mut measured_p = Vec::with_capacity(junctions.len());
    let mut model_p = Vec::with_capacity(junctions.len());
    let mut acf_sum = vec![0.0; config.max_lag];
    let mut ledger = BitLedger::default();
    let mut bits = vec![false; config.bits_per_device];
    for (d, (state, &v)) in junctions.iter().zip(amplitudes_v).enumerate() {
        let mut rng = stream(config.seed, &[stream_id, d as u64]);
        let mut generator = MramBitGenerator::new(model, state.clone(), v, config.generator);
        generator.fill(&mut bits, &mut rng);
        measured_p.push(generator.ledger().fraction_of_ones());
        model_p.push(generator.model_probability_of_one());
        for (acc, r) in acf_sum
            .iter_mut()
            .zip(autocorrelation(&bits, config.max_lag))
        {
            *acc += r;
        }
        ledger.add(generator.ledger());
    }
    let (measured_p_mean, measured_p_std) = mean_std(&measured_p);
    let max_abs_bias = measured_p
        .iter()
        .map(|p| (p - 0.5).abs())
        .fold(0.0, f64::max);
    let devices = junctions.len() as f64;
    PopulationStats {
        amplitude_v: amplitudes_v.to_vec(),
        model_p,
        measured_p,
        measured_p_mean,
        measured_p_std,
        max_abs_bias,
        autocorrelation: acf_sum.iter().map(|s| s / devices).collect(),
        autocorrelation_standard_error: 1.0 / (devices * config.bits_per_device as f64).sqrt(),
        bits_per_s: ledger.bits as f64 / ledger.time_s,
        energy_per_bit_j: ledger.energy_j / ledger.bits as f64,
    }
}

/// Stream identifiers of the experiment's phases (first index of every stream path).
mod streams {
    pub const FABRICATION: u64 = 0;
    pub const CALIBRATION: u64 = 1;
    pub const UNCALIBRATED: u64 = 2;
    pub const CALIBRATED: u64 = 3;
    pub const AMPLITUDE_SWEEP: u64 = 4;
    pub const READ_DISTURB: u64 = 5;
}

/// Fabricate `n` junctions from stream `(seed, id, i)`.
pub fn fabricate_junctions(model: &Mram, seed: u64, id: u64, n: usize) -> Vec<MramState> {
    (0..n)
        .map(|i| model.fabricate(&mut stream(seed, &[streams::FABRICATION, id, i as u64])))
        .collect()
}

/// Run the MRAM random-bit experiment.
pub fn run_mram_rng(config: &MramRngConfig) -> Result<MramRngReport> {
    config.validate()?;
    let model = config.model()?;
    let width_s = config.generator.pulse_width_s;
    let v50 = fifty_percent_amplitude_v(&model, &model.nominal_state(false), width_s)?;
    let junctions = fabricate_junctions(&model, config.seed, 0, config.devices);

    let amplitude_sweep = config
        .amplitude_factors
        .iter()
        .enumerate()
        .map(|(i, &factor)| {
            let v = factor * v50;
            let nominal =
                MramBitGenerator::new(&model, model.nominal_state(false), v, config.generator);
            let amplitudes = vec![v; junctions.len()];
            let stats = population(
                &model,
                &junctions,
                &amplitudes,
                config,
                streams::AMPLITUDE_SWEEP * 1000 + i as u64,
            );
            AmplitudePoint {
                amplitude_v: v,
                model_p_nominal: nominal.model_probability_of_one(),
                model_p_mean: mean_std(&stats.model_p).0,
                measured_p_mean: stats.measured_p_mean,
                measured_p_std: stats.measured_p_std,
            }
        })
        .collect();

    let uncalibrated = population(
        &model,
        &junctions,
        &vec![v50; junctions.len()],
        config,
        streams::UNCALIBRATED,
    );
    let mut calibration_cost = BitLedger::default();
    let calibrated_v: Vec<f64> = junctions
        .iter()
        .enumerate()
        .map(|(d, state)| {
            let mut rng = stream(config.seed, &[streams::CALIBRATION, d as u64]);
            let (v, cost) = calibrate_amplitude(
                &model,
                state,
                v50,
                config.generator,
                &config.calibration,
                &mut rng,
            );
            calibration_cost.add(&cost);
            v
        })
        .collect();
    let calibrated = population(
        &model,
        &junctions,
        &calibrated_v,
        config,
        streams::CALIBRATED,
    );
    let read_disturb = read_disturb_sweep(config, v50)?;
    let devices = junctions.len() as f64;
    Ok(MramRngReport {
        v50_nominal_v: v50,
        pulse_width_s: width_s,
        amplitude_sweep,
        uncalibrated,
        calibrated,
        calibration_energy_per_device_j: calibration_cost.energy_j / devices,
        calibration_time_per_device_s: calibration_cost.time_s / devices,
        read_disturb,
    })
}

/// Bias of the nominal junction at its 50 % amplitude for each read voltage.
fn read_disturb_sweep(config: &MramRngConfig, v50: f64) -> Result<Vec<ReadDisturbPoint>> {
    let bits = config.devices * config.bits_per_device;
    config
        .read_voltages_v
        .iter()
        .enumerate()
        .map(|(i, &v_read)| {
            let mut overrides = config.overrides.clone();
            overrides.insert("v_read_v".to_string(), toml::Value::Float(v_read));
            let model = load_mram(&config.device, &overrides)
                .with_context(|| format!("read_voltages_v[{i}] = {v_read}"))?;
            let mut generator =
                MramBitGenerator::new(&model, model.nominal_state(false), v50, config.generator);
            let mut rng = stream(config.seed, &[streams::READ_DISTURB, i as u64]);
            for _ in 0..bits {
                generator.next_bit(&mut rng);
            }
            Ok(ReadDisturbPoint {
                v_read_v: v_read,
                disturb_probability: model.read_disturb_probability(&model.nominal_state(false)),
                model_p: generator.model_probability_of_one(),
                measured_p: generator.ledger().fraction_of_ones(),
                bits: generator.ledger().bits,
            })
        })
        .collect()
}

/// Histogram of values in [0, 1] with `bins` equal bins, as (bin centre, count) points.
pub fn unit_histogram(values: &[f64], bins: usize) -> Vec<(f64, f64)> {
    let mut counts = vec![0.0; bins];
    for &v in values {
        let b = ((v * bins as f64) as usize).min(bins - 1);
        counts[b] += 1.0;
    }
    counts
        .iter()
        .enumerate()
        .map(|(b, &c)| ((b as f64 + 0.5) / bins as f64, c))
        .collect()
}

/// Bins of the device-spread histogram.
const SPREAD_BINS: usize = 50;

/// Draw the MRAM random-bit figures into `dir`: `rng_bias_vs_amplitude`,
/// `rng_device_spread`, `rng_read_disturb`, `rng_autocorrelation` (PNG and SVG).
pub fn plot_mram_rng(report: &MramRngReport, dir: &Path) -> Result<()> {
    let sweep = &report.amplitude_sweep;
    let mut bias = Figure::new(
        "MRAM random bits: probability of a 1 vs SET amplitude",
        "SET pulse amplitude (V)",
        "P(bit = 1)",
    );
    bias.y_range = Some((0.0, 1.0));
    bias.series = vec![
        Series::new(
            "model, nominal junction",
            sweep
                .iter()
                .map(|p| (p.amplitude_v, p.model_p_nominal))
                .collect(),
            Style::Line,
            0,
        ),
        Series::new(
            "model, mean over junctions",
            sweep
                .iter()
                .map(|p| (p.amplitude_v, p.model_p_mean))
                .collect(),
            Style::Line,
            2,
        ),
        Series::new(
            "measured, mean +- std over junctions",
            sweep
                .iter()
                .map(|p| (p.amplitude_v, p.measured_p_mean))
                .collect(),
            Style::Points,
            1,
        )
        .with_errors(sweep.iter().map(|p| p.measured_p_std).collect()),
    ];
    save(&bias, &dir.join("rng_bias_vs_amplitude"))?;

    let bin_width = 1.0 / SPREAD_BINS as f64;
    let mut spread = Figure::new(
        "Device-to-device spread of the bit bias",
        "measured P(bit = 1) of a junction",
        "junctions",
    );
    spread.series = vec![
        Series::new(
            "shared nominal amplitude",
            unit_histogram(&report.uncalibrated.measured_p, SPREAD_BINS),
            Style::Bars { bin_width },
            1,
        ),
        Series::new(
            "calibrated amplitude per junction",
            unit_histogram(&report.calibrated.measured_p, SPREAD_BINS),
            Style::Bars { bin_width },
            0,
        ),
    ];
    save(&spread, &dir.join("rng_device_spread"))?;

    let mut disturb = Figure::new(
        "Read disturb biases the generator",
        "read voltage (V)",
        "P(bit = 1)",
    );
    disturb.series = vec![
        Series::new(
            "model",
            report
                .read_disturb
                .iter()
                .map(|p| (p.v_read_v, p.model_p))
                .collect(),
            Style::Line,
            0,
        ),
        Series::new(
            "measured",
            report
                .read_disturb
                .iter()
                .map(|p| (p.v_read_v, p.measured_p))
                .collect(),
            Style::Points,
            1,
        )
        .with_errors(
            report
                .read_disturb
                .iter()
                .map(|p| 2.0 * (p.measured_p * (1.0 - p.measured_p) / p.bits as f64).sqrt())
                .collect(),
        ),
    ];
    save(&disturb, &dir.join("rng_read_disturb"))?;

    let lags = |acf: &[f64]| -> Vec<(f64, f64)> {
        acf.iter()
            .enumerate()
            .map(|(i, &r)| ((i + 1) as f64, r))
            .collect()
    };
    let mut acf = Figure::new(
        "Autocorrelation of the generated bits (mean over junctions)",
        "lag (bits)",
        "autocorrelation",
    );
    acf.series = vec![
        Series::new(
            "shared nominal amplitude",
            lags(&report.uncalibrated.autocorrelation),
            Style::LinePoints,
            1,
        ),
        Series::new(
            "calibrated",
            lags(&report.calibrated.autocorrelation),
            Style::LinePoints,
            0,
        ),
    ];
    let band = 2.0 * report.calibrated.autocorrelation_standard_error;
    let max_lag = report.calibrated.autocorrelation.len() as f64;
    for sign in [1.0, -1.0] {
        let label = if sign > 0.0 {
            "+-2 standard errors, independent bits"
        } else {
            ""
        };
        let points = vec![(1.0, sign * band), (max_lag, sign * band)];
        acf.series.push(Series::new(label, points, Style::Line, 8));
    }
    save(&acf, &dir.join("rng_autocorrelation"))
}
