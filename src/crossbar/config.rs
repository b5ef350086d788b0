//! Configuration of a crossbar tile: every non-ideality named, with its unit and default.
//!
//! One [`TileConfig`] fully describes the simulated hardware of a tile (the idea of
//! aihwkit's `RPUConfig`): how weights map onto conductances, the periphery (DAC, ADC,
//! sense amplifier, output noise), programming, faults, wires and the energy figures.
//! Experiment drivers fill it from TOML (`serde`, unknown fields rejected); call
//! [`TileConfig::validate`] before use (tile constructors do) to get clear errors.

use anyhow::{Result, bail, ensure};
use serde::{Deserialize, Serialize};

use super::energy::EnergyConfig;

/// Everything that describes one tile's hardware.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TileConfig {
    /// Largest number of array rows (inputs) of one physical tile; larger matrices are
    /// split over several tiles by [`super::TiledMatrix`].
    pub max_rows: usize,
    /// Largest number of array columns (outputs) of one physical tile.
    pub max_cols: usize,
    /// Weight to conductance mapping.
    pub mapping: MappingConfig,
    /// DAC, ADC, sense amplifier and noise.
    pub periphery: PeripheryConfig,
    /// Programming (open loop or write-verify).
    pub programming: ProgrammingConfig,
    /// Fabrication faults added on top of the device preset's own.
    pub faults: FaultConfig,
    /// Wire resistances (IR drop). All zero: ideal wires.
    pub wires: WireConfig,
    /// Energy and latency figures of the periphery.
    pub energy: EnergyConfig,
}

impl Default for TileConfig {
    fn default() -> Self {
        Self {
            max_rows: 256,
            max_cols: 256,
            mapping: MappingConfig::default(),
            periphery: PeripheryConfig::default(),
            programming: ProgrammingConfig::default(),
            faults: FaultConfig::default(),
            wires: WireConfig::default(),
            energy: EnergyConfig::default(),
        }
    }
}

impl TileConfig {
    /// A tile with every non-ideality of the periphery switched off: no DAC/ADC
    /// quantisation, no device read noise, no output noise, no faults, ideal wires,
    /// open-loop programming. With ideal devices this is the exact digital twin.
    pub fn ideal() -> Self {
        let mut config = Self::default();
        config.periphery.dac_bits = None;
        config.periphery.adc.bits = None;
        config.periphery.read_noise = false;
        config.periphery.output_noise_sigma_a = 0.0;
        config.periphery.drift_compensation = false;
        config.programming.method = ProgrammingMethod::OpenLoop;
        config
    }

    /// Check every field; the error names the field and the accepted range.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.max_rows > 0 && self.max_cols > 0,
            "tile.max_rows and tile.max_cols must be at least 1 (got {} x {})",
            self.max_rows,
            self.max_cols
        );
        self.mapping.validate()?;
        self.periphery.validate()?;
        self.programming.validate()?;
        self.faults.validate()?;
        self.wires.validate()?;
        self.energy.validate()?;
        Ok(())
    }
}

/// How a weight is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightEncoding {
    /// Analog differential pair: w > 0 raises G+, w < 0 raises G- (one device per sign),
    /// W = w_max (G+ - G-) / (g_max - g_min).
    Analog,
    /// One analog device per weight read against a reference device programmed to the
    /// middle of the window, G_ref = g_min + (g_max - g_min) / 2 (the reference column of
    /// NeuroSim V3.0): W = 2 w_max (G - G_ref) / (g_max - g_min), so the device's whole
    /// window spans [-w_max, w_max]; pulsed updates move only G.
    Reference,
    /// 2T2R complementary pair: +1 = (LRS, HRS), -1 = (HRS, LRS); w = w_max sign(w).
    Binary,
    /// 2T2R ternary: +1 = (LRS, HRS), -1 = (HRS, LRS), 0 = (HRS, HRS); a weight is zero
    /// when |w| < `ternary_threshold` w_max.
    Ternary,
}

impl WeightEncoding {
    /// Whether weights are analog conductances (a differential pair or a device against
    /// a reference), as opposed to the binary states of 2T2R pairs.
    pub fn is_analog(self) -> bool {
        matches!(self, WeightEncoding::Analog | WeightEncoding::Reference)
    }
}

/// Bit slicing: a weight's magnitude spread over several devices of different
/// significance, each slice read by its own ADC and combined digitally (shift and add).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitSlicing {
    /// Number of slices (devices per sign per weight), at least 1.
    pub slices: u32,
    /// Bits stored per device: each device holds 2^bits equally spaced conductance levels.
    pub bits_per_slice: u32,
}

/// Weight to conductance mapping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MappingConfig {
    /// Analog, binary or ternary weights.
    pub encoding: WeightEncoding,
    /// Weight mapped to the full conductance window (g_max - g_min), in weight units.
    /// `None`: the largest |w| of the matrix programmed.
    pub weight_max: Option<f64>,
    /// Ternary encoding: |w| below this fraction of w_max becomes 0.
    pub ternary_threshold: f64,
    /// Optional bit slicing (analog encoding only).
    pub bit_slicing: Option<BitSlicing>,
}

impl Default for MappingConfig {
    fn default() -> Self {
        Self {
            encoding: WeightEncoding::Analog,
            weight_max: None,
            ternary_threshold: 0.5,
            bit_slicing: None,
        }
    }
}

impl MappingConfig {
    fn validate(&self) -> Result<()> {
        if let Some(w_max) = self.weight_max {
            ensure!(
                w_max.is_finite() && w_max > 0.0,
                "mapping.weight_max must be a positive finite number (got {w_max}); \
                 omit it to use the largest |w| of the matrix"
            );
        }
        ensure!(
            self.ternary_threshold.is_finite() && (0.0..1.0).contains(&self.ternary_threshold),
            "mapping.ternary_threshold must be in [0, 1) (got {})",
            self.ternary_threshold
        );
        if let Some(slicing) = self.bit_slicing {
            ensure!(
                self.encoding == WeightEncoding::Analog,
                "mapping.bit_slicing needs encoding = \"analog\" (got {:?})",
                self.encoding
            );
            ensure!(
                (1..=8).contains(&slicing.slices),
                "mapping.bit_slicing.slices must be in 1..=8 (got {})",
                slicing.slices
            );
            ensure!(
                (1..=8).contains(&slicing.bits_per_slice),
                "mapping.bit_slicing.bits_per_slice must be in 1..=8 (got {})",
                slicing.bits_per_slice
            );
            ensure!(
                slicing.slices * slicing.bits_per_slice <= 24,
                "mapping.bit_slicing: slices x bits_per_slice must be at most 24 (got {})",
                slicing.slices * slicing.bits_per_slice
            );
        }
        Ok(())
    }
}

/// Full-scale range of the column ADCs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdcRange {
    /// The same full scale for every column, amperes (codes span +-full_scale_a).
    Fixed {
        /// Full-scale current, amperes.
        full_scale_a: f64,
    },
    /// Per column: `fraction` x the largest current the column can carry
    /// (every input at full scale with the sign of its conductance difference,
    /// v_read sum_i |G+_ij - G-_ij|), set at programming.
    ColumnMax {
        /// Fraction of the worst-case current, in (0, 1] (default 1: the full worst case).
        #[serde(default = "full_worst_case")]
        fraction: f64,
    },
    /// Per column: `margin` x the largest |current| seen over calibration inputs
    /// ([`super::Tile::calibrate_adc`]); `ColumnMax { fraction: 1 }` until calibrated.
    Calibrated {
        /// Headroom factor over the largest calibration current, >= 1 usually (default
        /// [`DEFAULT_CALIBRATION_MARGIN`]).
        #[serde(default = "default_calibration_margin")]
        margin: f64,
    },
}

/// Default headroom of calibrated ADC ranges over the largest calibration current: 20 %,
/// so that test inputs somewhat stronger than any calibration input do not saturate (the
/// value every reference experiment uses).
pub const DEFAULT_CALIBRATION_MARGIN: f64 = 1.2;

fn default_calibration_margin() -> f64 {
    DEFAULT_CALIBRATION_MARGIN
}

fn full_worst_case() -> f64 {
    1.0
}

/// Column ADCs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdcConfig {
    /// Resolution in bits (signed codes -(2^(b-1)-1)..=2^(b-1)-1); `None` (written 0 in
    /// TOML): no quantisation.
    #[serde(with = "converter_bits")]
    pub bits: Option<u32>,
    /// Full-scale range; currents beyond it saturate.
    pub range: AdcRange,
}

impl Default for AdcConfig {
    fn default() -> Self {
        Self {
            bits: Some(8),
            range: AdcRange::ColumnMax { fraction: 1.0 },
        }
    }
}

/// Precharge sense amplifier of 2T2R arrays (Hirtzlin et al., Front. Neurosci. 2020;
/// Laborieux et al., IEEE TCAS-I 2021 for the ternary mode).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SenseAmpConfig {
    /// Input-referred offset of the comparator, Gaussian sigma, siemens (drawn per decision).
    pub offset_sigma_s: f64,
    /// Ternary mode: |G+ - G-| below this fraction of the nominal window
    /// (g_max - g_min) reads as 0.
    pub dead_zone_fraction: f64,
}

impl Default for SenseAmpConfig {
    fn default() -> Self {
        Self {
            offset_sigma_s: 0.0,
            dead_zone_fraction: 0.5,
        }
    }
}

/// Input drivers, read conditions, ADC and noise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeripheryConfig {
    /// Read voltage applied for a full-scale input, volts.
    pub v_read_v: f64,
    /// Input value mapped to +v_read (inputs beyond +-input_full_scale saturate).
    pub input_full_scale: f64,
    /// DAC resolution in bits (signed levels -(2^(b-1)-1)..=2^(b-1)-1); `None` (written 0
    /// in TOML): ideal.
    #[serde(with = "converter_bits")]
    pub dac_bits: Option<u32>,
    /// Column ADCs.
    pub adc: AdcConfig,
    /// Draw each device's read noise (sigma from the device model) at every read.
    pub read_noise: bool,
    /// Output (thermal / amplifier) noise added to each column current, Gaussian sigma,
    /// amperes.
    pub output_noise_sigma_a: f64,
    /// Global drift compensation: scale outputs by the ratio of the summed absolute
    /// outputs of a reference read right after programming and at inference time
    /// (Joshi et al., Nat. Commun. 2020; aihwkit `GlobalDriftCompensation`).
    pub drift_compensation: bool,
    /// Time after programming of the reference read, seconds. 20 s is t0 of the PCM
    /// drift model (Nandakumar et al., ICECS 2019).
    pub reference_read_time_s: f64,
    /// Precharge sense amplifier (2T2R reads).
    pub sense_amp: SenseAmpConfig,
}

impl Default for PeripheryConfig {
    fn default() -> Self {
        Self {
            v_read_v: 0.2,
            input_full_scale: 1.0,
            dac_bits: Some(8),
            adc: AdcConfig::default(),
            read_noise: true,
            output_noise_sigma_a: 0.0,
            drift_compensation: false,
            reference_read_time_s: 20.0,
            sense_amp: SenseAmpConfig::default(),
        }
    }
}

/// Converter resolutions in configuration files: a number of bits, or 0 for an ideal
/// (unquantised) converter, since TOML has no null.
mod converter_bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bits: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(bits.unwrap_or(0))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        Ok(Some(u32::deserialize(d)?).filter(|&b| b > 0))
    }
}

fn check_bits(name: &str, bits: Option<u32>) -> Result<()> {
    if let Some(b) = bits {
        ensure!(
            (2..=24).contains(&b),
            "{name} must be between 2 and 24 bits (got {b}); use 0 for an ideal converter"
        );
    }
    Ok(())
}

fn check_positive(name: &str, value: f64) -> Result<()> {
    ensure!(
        value.is_finite() && value > 0.0,
        "{name} must be a positive finite number (got {value})"
    );
    Ok(())
}

fn check_non_negative(name: &str, value: f64) -> Result<()> {
    ensure!(
        value.is_finite() && value >= 0.0,
        "{name} must be a finite number >= 0 (got {value})"
    );
    Ok(())
}

fn check_rate(name: &str, value: f64) -> Result<()> {
    ensure!(
        value.is_finite() && (0.0..=1.0).contains(&value),
        "{name} must be a probability in [0, 1] (got {value})"
    );
    Ok(())
}

impl PeripheryConfig {
    fn validate(&self) -> Result<()> {
        check_positive("periphery.v_read_v", self.v_read_v)?;
        check_positive("periphery.input_full_scale", self.input_full_scale)?;
        check_bits("periphery.dac_bits", self.dac_bits)?;
        check_bits("periphery.adc.bits", self.adc.bits)?;
        match self.adc.range {
            AdcRange::Fixed { full_scale_a } => {
                check_positive("periphery.adc.range.full_scale_a", full_scale_a)?
            }
            AdcRange::ColumnMax { fraction } => ensure!(
                fraction.is_finite() && fraction > 0.0 && fraction <= 1.0,
                "periphery.adc.range.fraction must be in (0, 1] (got {fraction})"
            ),
            AdcRange::Calibrated { margin } => {
                check_positive("periphery.adc.range.margin", margin)?
            }
        }
        check_non_negative("periphery.output_noise_sigma_a", self.output_noise_sigma_a)?;
        check_non_negative(
            "periphery.reference_read_time_s",
            self.reference_read_time_s,
        )?;
        check_non_negative(
            "periphery.sense_amp.offset_sigma_s",
            self.sense_amp.offset_sigma_s,
        )?;
        ensure!(
            self.sense_amp.dead_zone_fraction.is_finite()
                && (0.0..1.0).contains(&self.sense_amp.dead_zone_fraction),
            "periphery.sense_amp.dead_zone_fraction must be in [0, 1) (got {})",
            self.sense_amp.dead_zone_fraction
        );
        Ok(())
    }
}

/// Programming method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgrammingMethod {
    /// One shot per device, with the model's programming noise.
    OpenLoop,
    /// One shot, then read and correct until within the tolerance or out of pulses.
    WriteVerify,
}

/// How write-verify corrects a device that is out of tolerance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyCorrection {
    /// Program the target again in one shot (iterative programming, as for PCM;
    /// Joshi et al. 2020).
    Reprogram,
    /// Apply one nominal SET or RESET pulse towards the target (incremental step
    /// pulse programming, as for analog RRAM).
    Pulse,
}

/// Programming of the array.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProgrammingConfig {
    /// Open loop or write-verify.
    pub method: ProgrammingMethod,
    /// Write-verify correction step.
    pub correction: VerifyCorrection,
    /// Write-verify tolerance on |G_read - G_target|, fraction of the nominal window.
    pub tolerance_fraction: f64,
    /// Write-verify pulse budget per device (the first shot included).
    pub max_pulses: u32,
    /// Time after programming of the verify reads, seconds.
    pub verify_read_time_s: f64,
}

impl Default for ProgrammingConfig {
    fn default() -> Self {
        Self {
            method: ProgrammingMethod::WriteVerify,
            correction: VerifyCorrection::Reprogram,
            tolerance_fraction: 0.02,
            max_pulses: 20,
            verify_read_time_s: 1e-6,
        }
    }
}

impl ProgrammingConfig {
    fn validate(&self) -> Result<()> {
        check_positive("programming.tolerance_fraction", self.tolerance_fraction)?;
        ensure!(
            self.max_pulses >= 1,
            "programming.max_pulses must be at least 1 (got 0)"
        );
        check_non_negative("programming.verify_read_time_s", self.verify_read_time_s)?;
        Ok(())
    }
}

/// Fabrication faults of the array, on top of the device preset's own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// Probability that a device is stuck in its low-resistance state.
    pub stuck_at_lrs_rate: f64,
    /// Probability that a device is stuck in its high-resistance state.
    pub stuck_at_hrs_rate: f64,
    /// Probability that a row line is open (carries no current).
    pub dead_row_rate: f64,
    /// Probability that a column line is open (carries no current).
    pub dead_column_rate: f64,
    /// Rows known to be dead (0-based array rows of each tile).
    pub dead_rows: Vec<usize>,
    /// Columns known to be dead (0-based array columns of each tile).
    pub dead_columns: Vec<usize>,
}

impl FaultConfig {
    fn validate(&self) -> Result<()> {
        check_rate("faults.stuck_at_lrs_rate", self.stuck_at_lrs_rate)?;
        check_rate("faults.stuck_at_hrs_rate", self.stuck_at_hrs_rate)?;
        ensure!(
            self.stuck_at_lrs_rate + self.stuck_at_hrs_rate <= 1.0,
            "faults.stuck_at_lrs_rate + faults.stuck_at_hrs_rate must be at most 1 (got {})",
            self.stuck_at_lrs_rate + self.stuck_at_hrs_rate
        );
        check_rate("faults.dead_row_rate", self.dead_row_rate)?;
        check_rate("faults.dead_column_rate", self.dead_column_rate)?;
        Ok(())
    }
}

/// Wire and terminal resistances of the array (IR drop).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WireConfig {
    /// Resistance of one wire segment between neighbouring cells, ohms.
    pub r_wire_ohm: f64,
    /// Output resistance of each row driver, ohms.
    pub r_driver_ohm: f64,
    /// Input resistance of each column sense amplifier, ohms.
    pub r_sense_ohm: f64,
    /// Use the approximate (cheaper) IR-drop solver instead of the exact one.
    pub approximate: bool,
}

impl WireConfig {
    /// Whether any resistance is non-zero (the read path then solves the network).
    pub fn is_resistive(&self) -> bool {
        self.r_wire_ohm > 0.0 || self.r_driver_ohm > 0.0 || self.r_sense_ohm > 0.0
    }

    fn validate(&self) -> Result<()> {
        check_non_negative("wires.r_wire_ohm", self.r_wire_ohm)?;
        check_non_negative("wires.r_driver_ohm", self.r_driver_ohm)?;
        check_non_negative("wires.r_sense_ohm", self.r_sense_ohm)?;
        Ok(())
    }
}

/// Fail with a clear message when a dead-line index lies outside the array.
pub(crate) fn check_line_indices(name: &str, indices: &[usize], len: usize) -> Result<()> {
    if let Some(&bad) = indices.iter().find(|&&i| i >= len) {
        bail!("faults.{name} lists line {bad}, but the tile has only {len} (0-based indices)");
    }
    Ok(())
}
