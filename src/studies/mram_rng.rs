//! The MRAM random-bit study: MTJ junctions used as random bit generators
//! ([`crate::bayes::mram_rng`]), measured as a lab would. Bias versus SET amplitude, the
//! spread of the bias over fabricated junctions at one shared amplitude and after the
//! per-junction calibration loop, read disturb versus read voltage, autocorrelation,
//! throughput and energy per bit.
//!
//! The configuration names the MTJ preset; the driver [`run_mram_rng`] loads it, runs every
//! measurement and returns a report with every number, and [`plot_mram_rng`] draws the
//! figures.

use super::validate::{require, require_positive};
use crate::bayes::mram_rng::{
    BitLedger, CalibrationConfig, GeneratorConfig, MramBitGenerator, autocorrelation,
    calibrate_amplitude, fabricate_junctions, fifty_percent_amplitude_v,
};
use crate::device::mram::{Mram, MramState};
use crate::device::{AnyDevice, preset};
use crate::output::plot::{Figure, Series, Style, save};
use crate::rng::{self, stream};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

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
                rng::MRAM_AMPLITUDE_SWEEP_STREAM + i as u64,
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
        rng::MRAM_UNCALIBRATED_STREAM,
    );
    let mut calibration_cost = BitLedger::default();
    let calibrated_v: Vec<f64> = junctions
        .iter()
        .enumerate()
        .map(|(d, state)| {
            let mut rng = stream(config.seed, &[rng::MRAM_CALIBRATION_STREAM, d as u64]);
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
        rng::MRAM_CALIBRATED_STREAM,
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
            let mut rng = stream(config.seed, &[rng::MRAM_READ_DISTURB_STREAM, i as u64]);
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
