//! Standard device characterisation protocols, as a lab would run them on real devices:
//!
//! 1. `pulses`: conductance versus pulse number for several devices under a train of
//!    potentiating then depressing nominal pulses (nonlinearity, asymmetry, cycle-to-cycle and
//!    device-to-device spread);
//! 2. `switching`: switching probability versus pulse amplitude (at the nominal width) and
//!    versus pulse width (at the amplitude of 50 % switching), measured over many trials and
//!    compared with the model's analytic probability averaged over the same devices;
//! 3. `drift`: conductance versus time after programming for several target levels (PCM);
//! 4. `programming`: conductance histograms after open-loop programming to several targets,
//!    and LRS/HRS resistance distributions of binary operation;
//! 5. `compliance`: the binary RRAM LRS median and spread versus the SET compliance current
//!    and versus the endurance cycles already spent, beside the model's law.
//!
//! Each protocol writes `<name>.csv`, `<name>.png` and `<name>.svg`; a protocol that does not
//! apply to a device is skipped with a one-line reason. Every random stream is derived from
//! (seed, protocol, item indices) with [`crate::rng::stream`], so the output is identical for
//! any number of threads.

mod compliance;
mod drift;
mod programming;
mod pulses;
mod switching;

pub use drift::{DriftPoint, drift_series};
pub use programming::histogram;
pub use pulses::{PulseTrain, pulse_train};

use crate::device::{AnyDevice, AnyState, Device, Polarity, Pulse};
use crate::output::plot::{Figure, Series, Style, save, save_panels};
use crate::output::results::Table;
use crate::rng::{XbarRng, stream};
use anyhow::{Result, bail};
use rayon::prelude::*;
use serde::Serialize;
use std::path::Path;

/// Siemens to microsiemens, for axes.
const MICRO: f64 = 1e6;
/// Fractions of the nominal window used as programming targets.
const TARGET_FRACTIONS: [f64; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];
/// Times after programming of the drift protocol: log-spaced from 1 s to 1e7 s.
const DRIFT_DECADES: (f64, f64) = (0.0, 7.0);
/// Points per decade of the drift protocol.
const DRIFT_POINTS_PER_DECADE: usize = 4;
/// Factor of empty space above the highest bar or point, for the legend.
const LEGEND_HEADROOM: f64 = 1.35;

/// Settings of one characterisation run.
#[derive(Clone, Debug, Serialize)]
pub struct CharacterizeConfig {
    /// Devices in the pulse-train and drift protocols, and devices the switching trials cycle through.
    pub devices: usize,
    /// Trials per switching point, and samples per programming distribution.
    pub trials: usize,
    /// Master seed.
    pub seed: u64,
}

/// The protocols, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Conductance versus pulse number.
    Pulses,
    /// Switching probability versus amplitude and width.
    Switching,
    /// Conductance drift versus time.
    Drift,
    /// Distributions after programming.
    Programming,
    /// LRS median and spread versus compliance current and cycles (RRAM).
    Compliance,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 5] = [
        Protocol::Pulses,
        Protocol::Switching,
        Protocol::Drift,
        Protocol::Programming,
        Protocol::Compliance,
    ];

    /// File stem and name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Pulses => "pulses",
            Protocol::Switching => "switching",
            Protocol::Drift => "drift",
            Protocol::Programming => "programming",
            Protocol::Compliance => "compliance",
        }
    }

    fn stream_id(self) -> u64 {
        self as u64
    }
}

/// What happened to one protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Files written (relative to the output directory).
    Written(Vec<String>),
    /// Not applicable to this device, with the reason.
    Skipped(String),
}

/// Run one protocol on `device` (labelled `label` in titles), writing into `out`.
pub fn run_protocol(
    protocol: Protocol,
    device: &AnyDevice,
    label: &str,
    config: &CharacterizeConfig,
    out: &Path,
) -> Result<Outcome> {
    if config.devices == 0 || config.trials == 0 {
        bail!("--devices and --trials must be at least 1");
    }
    match protocol {
        Protocol::Pulses => pulses::pulses(device, label, config, out),
        Protocol::Switching => switching::switching(device, label, config, out),
        Protocol::Drift => drift::drift(device, label, config, out),
        Protocol::Programming => programming::programming(device, label, config, out),
        Protocol::Compliance => compliance::compliance(device, label, config, out),
    }
}

/// An estimate of the memory the protocols hold at once, bytes: the conductance traces of
/// the pulse train (one `f64` per pulse and device), the drift reads (two `f64` per read
/// time and device), the programmed samples (one `f64` per trial and target) and one
/// device state per device.
pub fn estimated_bytes(device: &AnyDevice, config: &CharacterizeConfig) -> f64 {
    let devices = config.devices as f64;
    let pulses = 2.0 * (device.pulses_across_window() as f64 * 1.25).max(10.0) + 1.0;
    let read_times = (DRIFT_DECADES.1 - DRIFT_DECADES.0) * DRIFT_POINTS_PER_DECADE as f64 + 1.0;
    let state = std::mem::size_of::<crate::device::AnyState>() as f64;
    let targets = TARGET_FRACTIONS.len() as f64;
    devices * (8.0 * pulses + 16.0 * read_times + state) + 8.0 * config.trials as f64 * targets
}

fn written(out: &Path, stem: &str, table: &Table) -> Result<Vec<String>> {
    table.write(&out.join(format!("{stem}.csv")))?;
    Ok(["csv", "png", "svg"]
        .iter()
        .map(|ext| format!("{stem}.{ext}"))
        .collect())
}

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
        .collect()
}

fn legend_headroom(fig: &mut Figure) {
    let top = fig
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    fig.y_range = Some((0.0, LEGEND_HEADROOM * top.max(1.0)));
}
