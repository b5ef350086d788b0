//! Energy and latency ledger of a tile: array reads, DAC and ADC conversions, programming.
//!
//! Array read energy comes from the actual currents: a row driven at v_i delivers
//! v_i * I_i for the read time, and I_i = v_i * sum_j G_ij (both devices of every pair
//! conduct), so E_array = t_read * sum_i v_i^2 * sum_j G_ij. DAC and ADC energies are per
//! conversion, with defaults from published designs (see [`EnergyConfig`]). The ledger
//! keeps a per-MVM record and the cumulative breakdown, and reports pJ per
//! multiply-accumulate for comparison with chips (IBM HERMES PCM: 9.76 TOPS/W, about
//! 0.2 pJ/MAC; Le Gallo et al., Nat. Electron. 2023).

use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};

use crate::device::WriteReport;

/// Energy per input bit of a 1-bit row DAC, joules: ISAAC's 8 x 128 1-bit DACs draw
/// 4 mW over its 100 ns crossbar read cycle, 4 mW x 100 ns / 1024 = 0.39 pJ
/// (Shafiee et al., ISCA 2016, Table I). A b-bit input costs b such conversions
/// (bit-serial input), so the default DAC energy is `bits` x this value.
pub const ISAAC_DAC_ENERGY_PER_BIT_J: f64 = 0.39e-12;

/// ADC energy per conversion step, joules: 2.2 fJ/conversion-step (Walden figure of
/// merit, E = FOM * 2^bits). At 8 bits this is 0.56 pJ, the upper end of NeuroSim's SAR
/// ADC estimates of 0.05-0.56 pJ per 8-bit conversion at 14-32 nm (Peng et al., IEDM 2019).
pub const WALDEN_FOM_J_PER_STEP: f64 = 2.2e-15;

/// Crossbar read (integration) time, seconds: ISAAC's 100 ns read cycle
/// (Shafiee et al., ISCA 2016).
pub const ISAAC_READ_TIME_S: f64 = 100e-9;

/// ADC conversion time, seconds: ISAAC's 8-bit ADC at 1.28 GS/s (Shafiee et al., ISCA 2016,
/// after Kull et al., JSSC 2013).
pub const ISAAC_ADC_CONVERSION_TIME_S: f64 = 1.0 / 1.28e9;

/// Energy and latency figures of the periphery.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnergyConfig {
    /// DAC energy per input bit per row, joules (see [`ISAAC_DAC_ENERGY_PER_BIT_J`]).
    /// An ideal (unquantised) DAC is counted as 8 bits.
    pub dac_energy_per_bit_j: f64,
    /// ADC Walden figure of merit, joules per conversion step (see
    /// [`WALDEN_FOM_J_PER_STEP`]). An ideal ADC is counted as 8 bits.
    pub adc_fom_j_per_step: f64,
    /// Array read (integration) time per input vector, seconds.
    pub read_time_s: f64,
    /// Time of one ADC conversion, seconds.
    pub adc_conversion_time_s: f64,
    /// Columns sharing one ADC (conversions of one read are serialised over them).
    pub columns_per_adc: u32,
}

impl Default for EnergyConfig {
    fn default() -> Self {
        Self {
            dac_energy_per_bit_j: ISAAC_DAC_ENERGY_PER_BIT_J,
            adc_fom_j_per_step: WALDEN_FOM_J_PER_STEP,
            read_time_s: ISAAC_READ_TIME_S,
            adc_conversion_time_s: ISAAC_ADC_CONVERSION_TIME_S,
            columns_per_adc: 1,
        }
    }
}

/// Bits assumed for the energy of an ideal (unquantised) converter.
const IDEAL_CONVERTER_BITS: u32 = 8;

impl EnergyConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("energy.dac_energy_per_bit_j", self.dac_energy_per_bit_j),
            ("energy.adc_fom_j_per_step", self.adc_fom_j_per_step),
            ("energy.read_time_s", self.read_time_s),
            ("energy.adc_conversion_time_s", self.adc_conversion_time_s),
        ] {
            ensure!(
                value.is_finite() && value >= 0.0,
                "{name} must be a finite number >= 0 (got {value})"
            );
        }
        ensure!(
            self.columns_per_adc >= 1,
            "energy.columns_per_adc must be at least 1 (got 0)"
        );
        Ok(())
    }

    /// Energy of one DAC conversion with `bits` of resolution, joules.
    pub fn dac_conversion_j(&self, bits: Option<u32>) -> f64 {
        self.dac_energy_per_bit_j * f64::from(bits.unwrap_or(IDEAL_CONVERTER_BITS))
    }

    /// Energy of one ADC conversion with `bits` of resolution, joules.
    pub fn adc_conversion_j(&self, bits: Option<u32>) -> f64 {
        self.adc_fom_j_per_step * 2f64.powi(bits.unwrap_or(IDEAL_CONVERTER_BITS) as i32)
    }

    /// Latency of one read of one input vector (array read, then the ADC conversions
    /// serialised over the columns sharing an ADC), seconds.
    pub fn read_latency_s(&self) -> f64 {
        self.read_time_s + f64::from(self.columns_per_adc) * self.adc_conversion_time_s
    }
}

/// Energy and latency of one operation (an MVM batch, or a sum of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnergyBreakdown {
    /// Energy dissipated in the array by read currents, joules.
    pub array_read_j: f64,
    /// DAC energy, joules.
    pub dac_j: f64,
    /// ADC energy, joules.
    pub adc_j: f64,
    /// Programming pulse energy, joules.
    pub programming_j: f64,
    /// Multiply-accumulate operations performed (rows x columns x vectors).
    pub macs: f64,
    /// Input vectors read.
    pub vectors: u64,
    /// DAC conversions.
    pub dac_conversions: u64,
    /// ADC conversions.
    pub adc_conversions: u64,
    /// Programming pulses.
    pub programming_pulses: u64,
    /// Read latency (vectors read one after the other), seconds.
    pub read_latency_s: f64,
    /// Programming time (pulses applied one after the other), seconds.
    pub programming_time_s: f64,
}

impl EnergyBreakdown {
    /// Read energy (array + DAC + ADC), joules.
    pub fn read_j(&self) -> f64 {
        self.array_read_j + self.dac_j + self.adc_j
    }

    /// Everything, programming included, joules.
    pub fn total_j(&self) -> f64 {
        self.read_j() + self.programming_j
    }

    /// Read energy per multiply-accumulate, picojoules (NaN before any read).
    pub fn pj_per_mac(&self) -> f64 {
        if self.macs > 0.0 {
            self.read_j() / self.macs * 1e12
        } else {
            f64::NAN
        }
    }

    /// Add another breakdown into this one.
    pub fn add(&mut self, other: &EnergyBreakdown) {
        self.array_read_j += other.array_read_j;
        self.dac_j += other.dac_j;
        self.adc_j += other.adc_j;
        self.programming_j += other.programming_j;
        self.macs += other.macs;
        self.vectors += other.vectors;
        self.dac_conversions += other.dac_conversions;
        self.adc_conversions += other.adc_conversions;
        self.programming_pulses += other.programming_pulses;
        self.read_latency_s += other.read_latency_s;
        self.programming_time_s += other.programming_time_s;
    }

    /// A breakdown holding the cost of a programming operation.
    pub fn from_write(write: &WriteReport) -> Self {
        Self {
            programming_j: write.energy_j,
            programming_pulses: u64::from(write.pulses),
            programming_time_s: write.time_s,
            ..Self::default()
        }
    }
}

/// Per-operation record plus the running total of a tile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnergyLedger {
    /// The most recent operation (MVM batch or programming).
    pub last: EnergyBreakdown,
    /// Everything since the tile was built (or since [`EnergyLedger::reset`]).
    pub total: EnergyBreakdown,
}

impl EnergyLedger {
    /// Record one operation.
    pub fn record(&mut self, op: EnergyBreakdown) {
        self.last = op;
        self.total.add(&op);
    }

    /// Forget everything.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}
