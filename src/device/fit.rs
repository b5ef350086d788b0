//! Fitting a pulsed step-model device ([`super::pulsed`]) to a measured pulse response:
//! conductance versus pulse number of one or more devices over potentiation/depression
//! cycles, turned into the parameters of one of aihwkit's step families (`xbar fit`).
//!
//! **Input** ([`parse_csv`]): a CSV text with a header and the columns
//! `device,pulse,polarity,conductance_s` (any order; `conductance_us` instead of
//! `conductance_s` gives microsiemens, both at once is an error). `device` names the device
//! (several devices in one file give the device-to-device spread); `pulse` is the pulse
//! number, a whole number that increases within a device; `polarity` is the pulse applied
//! just before the reading (`up`/`+1`/`set` potentiates, `down`/`-1`/`reset` depresses; the
//! polarity of a device's first row, usually the reading before any pulse, is not used);
//! the conductance is read after that pulse. Blank lines and lines starting with `#` are
//! skipped; fields may be quoted but never contain commas. The step of one pulse is the
//! change between two rows of a device whose pulse numbers differ by one; rows after a gap
//! in the numbering start a new chain.
//!
//! **Units.** The fit works in aihwkit's weight units: the pooled window — the mean over the
//! devices of each one's lowest and highest conductance — is mapped onto `[-1, 1]`, so
//! `w = 0` sits in its middle. (The step models only fix the weight scale up to this
//! choice: a shifted window with a different `up_down` can describe the same device, so a
//! refitted preset may name different but equivalent parameters; its steps in siemens are
//! the same.)
//!
//! **Method.** Each device is fitted on its own, by least squares of the predicted mean
//! step size `Δ(w)` against the observed steps of each polarity: a mean (constant step), a
//! straight line (linear step, soft bounds), a straight line in `e^{γ z}` with γ found by a
//! one-dimensional search (exponential step), a scale times a power with the exponent
//! searched (power step), or linear interpolation between evenly spaced nodes (piecewise
//! step: a linear least-squares fit of the node values). Steps that start or end at the
//! device's lowest or highest reading are left out of every fit, since the bound clips them.
//! The device's bounds are its lowest and highest weight, except for soft bounds, where they
//! are the zeros of the fitted up and down steps. The nominal parameters are the means over
//! the devices and the device-to-device spreads their standard deviations (relative where
//! aihwkit's parameter is relative); the up/down step scales are split into `dw_min`,
//! `up_down`, `dw_min_dtod` and `up_down_dtod` as aihwkit draws them. The cycle-to-cycle
//! noise `dw_min_std` is the maximum-likelihood spread of the residual steps, relative to the
//! predicted step (multiplicative noise) or to the device's step scale (additive noise; for
//! linear step and soft bounds the form with the higher likelihood is chosen and written as
//! `mult_noise`). Noise of the readings (aihwkit's write noise: the weight a read sees is
//! redrawn at every write) is told apart from cycle-to-cycle noise by its signature: a
//! reading shared by two successive steps makes their residuals anticorrelated, with
//! covariance minus its variance. That variance is written as `write_noise_std` and
//! subtracted from the residual variance before `dw_min_std` is taken. Since a step shares
//! the noise of its starting reading, least squares of steps against noisy readings is
//! biased (errors in variables): where the noise of the readings is more than a tenth of
//! the residual variance, the straight-line fits (linear step, soft bounds) are redone by
//! instrumental variables, with the reading one pulse earlier as instrument, on the steps
//! that this earlier reading keeps clear of the bounds. The exponential, power and
//! piecewise fits are not corrected, and the lowest and highest readings that
//! set the hard bounds are extremes of noisy readings: for very noisy data prefer soft
//! bounds or linear step, or average repeated readings first. When the noise of the
//! readings dominates the steps, `dw_min_std` is poorly determined (a small difference of
//! two large variances). Conventions of the fitted families: linear step with the cell's own bounds as
//! reference (`mean_bound_reference = false`), exponential step with `a = 1`, `b = 0`
//! (only `A e^{γ b}` and `γ a` are identifiable), piecewise step with its largest node equal
//! to 1 (so `dw_min` is the largest mean step).
//!
//! Not fitted (left at neutral values for the user to set): read noise (the noise of the
//! readings is fitted as write noise), drift, stuck cells, and the pulse used for energy
//! accounting ([`FitOptions`]).

use super::Polarity;
use super::pulsed::{
    CellShape, ExpStepParams, FAMILIES, LinearStepParams, PiecewiseStepParams, PowStepParams,
    PulsedDevice, PulsedParams, PulsedState, SoftBoundsParams, StepFamily,
};
use super::{Device, Pulse};
use anyhow::{Result, bail};
use rand::Rng;
use std::collections::HashMap;

/// Fewest single-pulse steps of each polarity a device needs (clipped steps at the bounds
/// not counted).
pub const MIN_STEPS_PER_POLARITY: usize = 10;

/// The largest conductance accepted, siemens (a larger value is a unit mistake).
pub const MAX_CONDUCTANCE_S: f64 = 1.0;

/// One reading: the conductance after a pulse.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// Pulse number (increasing within a device).
    pub pulse: u64,
    /// Polarity of the pulse applied just before the reading.
    pub polarity: Polarity,
    /// Conductance read after the pulse, siemens.
    pub g_s: f64,
    /// Line of the file it came from (1-based), for messages.
    pub line: usize,
}

/// The readings of one device, in pulse order.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceTrace {
    /// Device name as given in the file.
    pub id: String,
    /// Readings in increasing pulse number.
    pub readings: Vec<Reading>,
}

/// A measurement file, parsed and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurements {
    /// Where it came from, as used in messages.
    pub origin: String,
    /// The devices, in order of first appearance.
    pub devices: Vec<DeviceTrace>,
}

impl Measurements {
    /// Number of readings over all devices.
    pub fn readings(&self) -> usize {
        self.devices.iter().map(|d| d.readings.len()).sum()
    }

    /// Number of pulses applied over the measurement: for each device, its last pulse number
    /// minus its first.
    pub fn pulses(&self) -> u64 {
        self.devices
            .iter()
            .map(|d| match (d.readings.first(), d.readings.last()) {
                (Some(a), Some(b)) => b.pulse - a.pulse,
                _ => 0,
            })
            .sum()
    }

    /// Check that every device has enough single-pulse steps of each polarity and that its
    /// conductance moves.
    pub fn check(&self) -> Result<()> {
        let origin = &self.origin;
        if self.devices.is_empty() {
            bail!(
                "{origin}: no data rows after the header (add rows of device,pulse,polarity,conductance)"
            );
        }
        for d in &self.devices {
            let first = d.readings.first().map_or(0, |r| r.line);
            let (mut up, mut down) = (0, 0);
            for pair in d.readings.windows(2) {
                if pair[1].pulse == pair[0].pulse + 1 {
                    match pair[1].polarity {
                        Polarity::Set => up += 1,
                        Polarity::Reset => down += 1,
                    }
                }
            }
            if up.min(down) < MIN_STEPS_PER_POLARITY {
                bail!(
                    "{origin}: device `{}` (from line {first}): too few points: {up} up and \
                     {down} down single-pulse steps (consecutive pulse numbers); a fit needs at \
                     least {MIN_STEPS_PER_POLARITY} of each: measure more pulses or leave the \
                     device out",
                    d.id
                );
            }
            let lo = d
                .readings
                .iter()
                .map(|r| r.g_s)
                .fold(f64::INFINITY, f64::min);
            let hi = d.readings.iter().map(|r| r.g_s).fold(0.0, f64::max);
            if hi <= lo {
                bail!(
                    "{origin}: device `{}` (from line {first}): the conductance never changes \
                     ({lo:e} S): nothing to fit",
                    d.id
                );
            }
        }
        Ok(())
    }
}

/// The column names of a measurement file.
pub const COLUMNS: [&str; 4] = ["device", "pulse", "polarity", "conductance_s"];

/// Parse a measurement CSV (format in the module documentation); `origin` names the file in
/// messages. Every error names the file and the line or column and says the fix.
pub fn parse_csv(text: &str, origin: &str) -> Result<Measurements> {
    // A byte-order mark (spreadsheet exports) is not part of the header.
    let mut lines = text
        .trim_start_matches('\u{feff}')
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let Some((header_line, header)) = lines.next() else {
        bail!(
            "{origin}: empty file: expected a header line `{}` and one row per reading",
            COLUMNS.join(",")
        );
    };
    let names: Vec<&str> = header.split(',').map(field).collect();
    let column = |name: &str| names.iter().position(|n| *n == name);
    for n in &names {
        if ![
            "device",
            "pulse",
            "polarity",
            "conductance_s",
            "conductance_us",
        ]
        .contains(n)
        {
            bail!(
                "{origin}: line {header_line}: unknown column `{n}` (expected {} or \
                 conductance_us for microsiemens; the header line is required)",
                COLUMNS.join(", ")
            );
        }
    }
    let (g_col, scale, g_name) = match (column("conductance_s"), column("conductance_us")) {
        (Some(_), Some(_)) => bail!(
            "{origin}: line {header_line}: mixed units: both conductance_s (siemens) and \
             conductance_us (microsiemens) columns; keep one column in one unit"
        ),
        (Some(c), None) => (c, 1.0, "conductance_s"),
        (None, Some(c)) => (c, 1e-6, "conductance_us"),
        (None, None) => bail!(
            "{origin}: line {header_line}: missing column conductance_s (or conductance_us \
             for microsiemens); the header must be `{}`",
            COLUMNS.join(",")
        ),
    };
    let mut cols = [0usize; 3];
    for (slot, name) in cols.iter_mut().zip(["device", "pulse", "polarity"]) {
        *slot = column(name).ok_or_else(|| {
            anyhow::anyhow!(
                "{origin}: line {header_line}: missing column `{name}`; the header must be `{}`",
                COLUMNS.join(",")
            )
        })?;
    }
    let [device_col, pulse_col, polarity_col] = cols;
    let mut devices: Vec<DeviceTrace> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (line, row) in lines {
        let fields: Vec<&str> = row.split(',').map(field).collect();
        if fields.len() != names.len() {
            bail!(
                "{origin}: line {line}: {} fields, the header has {} ({}): one value per column",
                fields.len(),
                names.len(),
                names.join(",")
            );
        }
        let id = fields[device_col];
        if id.is_empty() {
            bail!("{origin}: line {line}: field device is empty: name the device");
        }
        let pulse: u64 = fields[pulse_col].parse().map_err(|_| {
            anyhow::anyhow!(
                "{origin}: line {line}: field pulse: `{}` is not a whole number >= 0",
                fields[pulse_col]
            )
        })?;
        let polarity = match fields[polarity_col].to_ascii_lowercase().as_str() {
            "up" | "+1" | "1" | "set" => Polarity::Set,
            "down" | "-1" | "reset" => Polarity::Reset,
            other => bail!(
                "{origin}: line {line}: field polarity: `{other}` is not a polarity (use up or \
                 +1 for potentiation, down or -1 for depression)"
            ),
        };
        let text = fields[g_col];
        let value: f64 = text.parse().map_err(|_| {
            anyhow::anyhow!(
                "{origin}: line {line}: field {g_name}: `{text}` is not a number (give a plain \
                 number in the unit of the column name, without a unit suffix)"
            )
        })?;
        if !value.is_finite() {
            bail!(
                "{origin}: line {line}: field {g_name}: `{text}` is not a finite number: \
                 remove the row or give the reading"
            );
        }
        if value < 0.0 {
            bail!(
                "{origin}: line {line}: field {g_name}: {text} is negative: a conductance is \
                 >= 0 (was a current or a difference given?)"
            );
        }
        let g_s = value * scale;
        if g_s > MAX_CONDUCTANCE_S {
            bail!(
                "{origin}: line {line}: field {g_name}: {text} is {g_s:e} S, not a memory \
                 cell's conductance (at most 1 S): check the unit (conductance_us for \
                 microsiemens)"
            );
        }
        let k = *index.entry(id.to_string()).or_insert_with(|| {
            devices.push(DeviceTrace {
                id: id.to_string(),
                readings: Vec::new(),
            });
            devices.len() - 1
        });
        let trace = &mut devices[k];
        if let Some(last) = trace.readings.last()
            && pulse <= last.pulse
        {
            bail!(
                "{origin}: line {line}: field pulse: non-monotonic pulse numbers: pulse {pulse} \
                 of device `{id}` does not come after pulse {} (line {}); pulse numbers must \
                 increase within a device",
                last.pulse,
                last.line
            );
        }
        trace.readings.push(Reading {
            pulse,
            polarity,
            g_s,
            line,
        });
    }
    let data = Measurements {
        origin: origin.to_string(),
        devices,
    };
    data.check()?;
    Ok(data)
}

/// A CSV field without surrounding spaces and double quotes (fields never contain commas).
fn field(raw: &str) -> &str {
    let t = raw.trim();
    t.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(t)
        .trim()
}

/// Settings of a fit that the data cannot give.
#[derive(Clone, Debug, PartialEq)]
pub struct FitOptions {
    /// Nodes of a piecewise-step table.
    pub piecewise_nodes: usize,
    /// Amplitude of the nominal pulse written to the preset, volts (energy accounting only).
    pub pulse_amplitude_v: f64,
    /// Width of the nominal pulse written to the preset, seconds.
    pub pulse_width_s: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            piecewise_nodes: 9,
            pulse_amplitude_v: 1.0,
            pulse_width_s: 100e-9,
        }
    }
}

/// One device's own fit.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceFit {
    /// Device name.
    pub id: String,
    /// Lower bound, weight units.
    pub b_min: f64,
    /// Upper bound, weight units.
    pub b_max: f64,
    /// Up step scale, weight units.
    pub scale_up: f64,
    /// Down step scale, weight units.
    pub scale_down: f64,
    /// Steps used (clipped steps at the bounds left out).
    pub steps: usize,
    /// Root mean square of the residual steps, siemens.
    pub residual_rms_s: f64,
}

/// What a fit found, besides the device.
#[derive(Clone, Debug, PartialEq)]
pub struct FitReport {
    /// Devices in the file.
    pub devices: usize,
    /// Readings in the file.
    pub readings: usize,
    /// Pulses applied over the measurement ([`Measurements::pulses`]).
    pub pulses: u64,
    /// Single-pulse steps used by the fit.
    pub steps: usize,
    /// Root mean square of the residual steps over every device, siemens.
    pub residual_rms_s: f64,
    /// The same, relative to the fitted mean step `dw_min`.
    pub residual_rms_rel: f64,
    /// Each device's own fit.
    pub per_device: Vec<DeviceFit>,
    /// Whether the cycle-to-cycle noise was found multiplicative (relative to the step).
    pub mult_noise: bool,
    /// Standard deviation of the noise of one reading, siemens (written as
    /// `write_noise_std`).
    pub reading_noise_s: f64,
}

/// A fitted device and its report.
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    /// The fitted device (nominal parameters and spreads).
    pub device: PulsedDevice,
    /// Residuals and per-device fits.
    pub report: FitReport,
}

/// One single-pulse step, in the fit's weight units.
#[derive(Clone, Copy, Debug)]
struct Step {
    /// Pulse number of the reading before the pulse.
    start: u64,
    /// Weight read one pulse earlier still, if that reading exists (the instrument of the
    /// straight-line fits of noisy readings).
    z: Option<f64>,
    /// Weight before the pulse.
    w: f64,
    /// Size of the step in the pulse's direction (positive when the device moves as told).
    y: f64,
    up: bool,
}

/// A device's shape parameters as fitted on its own.
#[derive(Clone, Debug)]
enum Shape {
    /// Constant step.
    Plain,
    /// Soft bounds (slopes from the scales and bounds).
    SoftBounds,
    /// Linear-step γ⁺, γ⁻.
    Linear(f64, f64),
    /// Exponential step (A_up, γ_up, A_down, γ_down).
    Exp(f64, f64, f64, f64),
    /// Power-step exponents (up, down).
    Pow(f64, f64),
    /// Piecewise tables in weight units (up, down).
    Table(Vec<f64>, Vec<f64>),
}

#[derive(Clone, Debug)]
struct OwnFit {
    b_min: f64,
    b_max: f64,
    s_up: f64,
    s_down: f64,
    shape: Shape,
}

/// Fit `family` (one of [`FAMILIES`]) to `data`; see the module documentation for the method.
pub fn fit(data: &Measurements, family: &str, options: &FitOptions) -> Result<Fit> {
    let origin = &data.origin;
    if !FAMILIES.contains(&family) {
        bail!(
            "unknown step family `{family}` (expected one of {})",
            FAMILIES.join(", ")
        );
    }
    if family == "piecewise_step" && !(2..=1000).contains(&options.piecewise_nodes) {
        bail!(
            "piecewise nodes = {}: must be between 2 and 1000",
            options.piecewise_nodes
        );
    }
    data.check()?;
    // The gauge: the mean lowest and highest conductance map onto -1 and 1.
    let n_dev = data.devices.len() as f64;
    let extremes: Vec<(f64, f64)> = data
        .devices
        .iter()
        .map(|d| {
            d.readings
                .iter()
                .fold((f64::INFINITY, 0.0f64), |(lo, hi), r| {
                    (lo.min(r.g_s), hi.max(r.g_s))
                })
        })
        .collect();
    let g_lo = extremes.iter().map(|e| e.0).sum::<f64>() / n_dev;
    let g_hi = extremes.iter().map(|e| e.1).sum::<f64>() / n_dev;
    let s_per_w = (g_hi - g_lo) / 2.0;
    if s_per_w <= 0.0 {
        bail!("{origin}: the devices' conductance windows are empty: nothing to fit");
    }
    let weight = |g: f64| -1.0 + (g - g_lo) / s_per_w;

    let mut own = Vec::with_capacity(data.devices.len());
    let mut steps_of = Vec::with_capacity(data.devices.len());
    let mut all_steps = Vec::with_capacity(data.devices.len());
    for (d, &(lo, hi)) in data.devices.iter().zip(&extremes) {
        let (o_min, o_max) = (weight(lo), weight(hi));
        let steps = device_steps(d, &weight, o_min, o_max);
        let (up, down) = steps.iter().fold(
            (0, 0),
            |(u, n), s| {
                if s.up { (u + 1, n) } else { (u, n + 1) }
            },
        );
        if up.min(down) < MIN_STEPS_PER_POLARITY {
            bail!(
                "{origin}: device `{}` (from line {}): too few points away from its bounds: \
                 {up} up and {down} down steps that do not start or end at its lowest or highest \
                 reading; a fit needs at least {MIN_STEPS_PER_POLARITY} of each",
                d.id,
                d.readings[0].line
            );
        }
        let first = fit_one(
            &steps,
            family,
            (o_min, o_max),
            options.piecewise_nodes,
            false,
        )
        .map_err(|e| anyhow::anyhow!("{origin}: device `{}`: {e}", d.id))?;
        // Second pass without the steps the bounds may have clipped.
        let kept = unclipped(&steps, &first, (o_min, o_max));
        let second = fit_one(
            &kept,
            family,
            (o_min, o_max),
            options.piecewise_nodes,
            false,
        )
        .ok();
        match second {
            Some(fitted) if enough(&kept) => {
                own.push(fitted);
                steps_of.push(kept);
            }
            _ => {
                own.push(first);
                steps_of.push(steps.clone());
            }
        }
        all_steps.push(steps);
    }

    // Noise of the readings; where it is a sizeable part of the residual steps, the
    // straight-line fits are redone by instrumental variables on the steps whose earlier
    // reading (not their own noisy one) keeps them clear of the bounds.
    let (mut read_var, residual_var) = reading_variance(&own, &steps_of);
    if 2.0 * read_var > 0.1 * residual_var && matches!(family, "soft_bounds" | "linear_step") {
        for (((o, kept), steps), &(lo, hi)) in own
            .iter_mut()
            .zip(steps_of.iter_mut())
            .zip(&all_steps)
            .zip(&extremes)
        {
            let bounds = (weight(lo), weight(hi));
            let clear = clear_by_instrument(steps, o, bounds);
            if !enough(&clear) {
                continue;
            }
            if let Ok(fitted) = fit_one(&clear, family, bounds, options.piecewise_nodes, true) {
                *o = fitted;
                *kept = clear;
            }
        }
        read_var = reading_variance(&own, &steps_of).0;
    }

    if family == "exp_step" {
        pool_exp_shape(&mut own, &steps_of);
    }

    if let Some(Shape::Exp(a_u, g_u, a_d, g_d)) = own.first().map(|o| &o.shape) {
        // The step's largest value within the window, relative to its scale (1 - A e^{γ z}
        // is monotonic in z, so the ends of z in [-1, 1] suffice).
        let peak = |a: f64, g: f64| (1.0 - a * (-g).exp()).max(1.0 - a * g.exp());
        if peak(*a_u, *g_u).min(peak(*a_d, *g_d)) < 0.1 {
            bail!(
                "{origin}: exp_step fits these data only in a degenerate limit (A_up = {a_u:.3}, \
                 gamma_up = {g_u:.3}, A_down = {a_d:.3}, gamma_down = {g_d:.3}: every step is a \
                 small difference of two large terms, so dw_min would be meaningless); the \
                 steps change about linearly with the conductance: fit linear_step or \
                 soft_bounds instead"
            );
        }
    }

    // Bounds.
    let b_mins: Vec<f64> = own.iter().map(|o| o.b_min).collect();
    let b_maxs: Vec<f64> = own.iter().map(|o| o.b_max).collect();
    let (w_min, w_min_sd) = mean_std(&b_mins);
    let (w_max, w_max_sd) = mean_std(&b_maxs);
    if !(w_min < 0.0 && w_max > 0.0) {
        bail!(
            "{origin}: the fitted bounds [{w_min:.3}, {w_max:.3}] (weight units) do not contain \
             0: {family} does not describe these devices; try another family"
        );
    }
    let g_of = |w: f64| g_lo + (w + 1.0) * s_per_w;
    let (g_min_s, g_max_s) = (g_of(w_min), g_of(w_max));
    if g_min_s < 0.0 {
        bail!(
            "{origin}: the fitted lower bound lies at {g_min_s:e} S, below 0 S: {family} does not \
             describe these devices; try another family"
        );
    }

    // Family shape and the split of the step scales.
    let mut scales: Vec<(f64, f64)> = own.iter().map(|o| (o.s_up, o.s_down)).collect();
    let mut shape_family = match family {
        "constant_step" => StepFamily::ConstantStep,
        "soft_bounds" => StepFamily::SoftBounds(SoftBoundsParams { mult_noise: true }),
        "linear_step" => {
            let ups: Vec<f64> = own.iter().map(|o| shape_linear(&o.shape).0).collect();
            let downs: Vec<f64> = own.iter().map(|o| shape_linear(&o.shape).1).collect();
            let (gamma_up, gamma_up_dtod) = mean_std(&ups);
            let (gamma_down, gamma_down_dtod) = mean_std(&downs);
            StepFamily::LinearStep(LinearStepParams {
                gamma_up,
                gamma_down,
                gamma_up_dtod,
                gamma_down_dtod,
                allow_increasing: gamma_up < 0.0 || gamma_down < 0.0,
                mean_bound_reference: false,
                mult_noise: true,
            })
        }
        "exp_step" => {
            let get = |k: usize| -> f64 {
                let v: Vec<f64> = own
                    .iter()
                    .map(|o| match o.shape {
                        Shape::Exp(a, b, c, d) => [a, b, c, d][k],
                        _ => 0.0,
                    })
                    .collect();
                mean_std(&v).0
            };
            StepFamily::ExpStep(ExpStepParams {
                a_up: get(0),
                gamma_up: get(1),
                a_down: get(2),
                gamma_down: get(3),
                a: 1.0,
                b: 0.0,
                dw_min_std_add: 0.0,
                dw_min_std_slope: 0.0,
            })
        }
        "pow_step" => {
            let pairs: Vec<(f64, f64)> = own
                .iter()
                .map(|o| match o.shape {
                    Shape::Pow(u, d) => (u, d),
                    _ => (1.0, 1.0),
                })
                .collect();
            let split = split_up_down(&pairs);
            StepFamily::PowStep(PowStepParams {
                pow_gamma: split.nominal,
                pow_gamma_dtod: split.dtod,
                pow_up_down: split.up_down,
                pow_up_down_dtod: split.up_down_dtod,
            })
        }
        _ => {
            // Piecewise: the nominal table is the mean of the devices' tables, normalised to a
            // largest node of 1; each device's scales are its tables' gains on the nominal ones.
            let n = options.piecewise_nodes;
            let mut mean_up = vec![0.0; n];
            let mut mean_down = vec![0.0; n];
            for o in &own {
                if let Shape::Table(u, d) = &o.shape {
                    for k in 0..n {
                        mean_up[k] += u[k] / n_dev;
                        mean_down[k] += d[k] / n_dev;
                    }
                }
            }
            let top = mean_up
                .iter()
                .chain(&mean_down)
                .fold(0.0f64, |m, &v| m.max(v));
            if top <= 0.0 {
                bail!("{origin}: the fitted step tables are zero: the devices do not move");
            }
            let gain = |t: &[f64], m: &[f64]| {
                let num: f64 = t.iter().zip(m).map(|(a, b)| a * b).sum();
                let den: f64 = m.iter().map(|b| b * b).sum();
                if den > 0.0 { num / den } else { 1.0 }
            };
            scales = own
                .iter()
                .map(|o| match &o.shape {
                    Shape::Table(u, d) => (top * gain(u, &mean_up), top * gain(d, &mean_down)),
                    _ => (top, top),
                })
                .collect();
            StepFamily::PiecewiseStep(PiecewiseStepParams {
                piecewise_up: mean_up.iter().map(|v| (v / top).max(0.0)).collect(),
                piecewise_down: mean_down.iter().map(|v| (v / top).max(0.0)).collect(),
            })
        }
    };
    let split = split_up_down(&scales);

    // Cycle-to-cycle noise from the residuals of each device's own model.
    let mut mult = Likelihood::default();
    let mut add = Likelihood::default();
    let mut per_device = Vec::with_capacity(own.len());
    let mut total_sq = 0.0;
    let mut total_n = 0usize;
    for ((o, steps), d) in own.iter().zip(&steps_of).zip(&data.devices) {
        let (cell_device, cell) = own_device(o);
        let mut sq = 0.0;
        for s in steps {
            let polarity = if s.up { Polarity::Set } else { Polarity::Reset };
            let mean = cell_device.mean_step(&cell, polarity, s.w);
            let scale = if s.up { o.s_up } else { o.s_down };
            let r = s.y - mean;
            sq += r * r;
            mult.add(r, mean.abs().max(1e-3 * scale));
            add.add(r, scale);
        }
        total_sq += sq;
        total_n += steps.len();
        per_device.push(DeviceFit {
            id: d.id.clone(),
            b_min: o.b_min,
            b_max: o.b_max,
            scale_up: o.s_up,
            scale_down: o.s_down,
            steps: steps.len(),
            residual_rms_s: (sq / steps.len() as f64).sqrt() * s_per_w,
        });
    }
    let can_choose = matches!(
        shape_family,
        StepFamily::LinearStep(_) | StepFamily::SoftBounds(_)
    );
    let mult_noise = !can_choose || mult.log_likelihood() >= add.log_likelihood();
    match &mut shape_family {
        StepFamily::LinearStep(p) => p.mult_noise = mult_noise,
        StepFamily::SoftBounds(p) => p.mult_noise = mult_noise,
        _ => {}
    }
    // The residual steps also hold the noise of their two readings (2 read_var each): the
    // cycle-to-cycle part is what remains.
    let step_part = (1.0 - 2.0 * total_n as f64 * read_var / total_sq).max(0.0);
    let dw_min_std = step_part.sqrt()
        * if mult_noise {
            mult.sigma()
        } else {
            add.sigma()
        };

    let params = PulsedParams {
        g_min_s,
        g_max_s,
        w_min,
        w_max,
        w_min_dtod: w_min_sd / w_min.abs(),
        w_max_dtod: w_max_sd / w_max,
        dw_min: split.nominal,
        dw_min_dtod: split.dtod,
        dw_min_std,
        up_down: split.up_down,
        up_down_dtod: split.up_down_dtod,
        write_noise_std: read_var.sqrt() / split.nominal,
        read_noise_rel: 0.0,
        drift_nu: 0.0,
        drift_t0_s: 1.0,
        p_stuck_lrs: 0.0,
        p_stuck_hrs: 0.0,
        pulse_amplitude_v: options.pulse_amplitude_v,
        pulse_width_s: options.pulse_width_s,
        diffusion: 0.0,
        diffusion_dtod: 0.0,
        lifetime: 0.0,
        lifetime_dtod: 0.0,
        reset: 0.0,
        reset_dtod: 0.0,
    };
    let device = PulsedDevice::new(params, shape_family);
    device.validate().map_err(|e| {
        anyhow::anyhow!(
            "{origin}: the fitted {family} parameters are not valid ({e}); try another family"
        )
    })?;
    let residual_rms_s = (total_sq / total_n as f64).sqrt() * s_per_w;
    let report = FitReport {
        devices: data.devices.len(),
        readings: data.readings(),
        pulses: data.pulses(),
        steps: total_n,
        residual_rms_s,
        residual_rms_rel: residual_rms_s / (split.nominal * s_per_w),
        per_device,
        mult_noise,
        reading_noise_s: read_var.sqrt() * s_per_w,
    };
    Ok(Fit { device, report })
}

/// A device's single-pulse steps in weight units, without those that start or end at its
/// lowest (`o_min`) or highest (`o_max`) weight in the direction of the pulse.
fn device_steps(d: &DeviceTrace, weight: &dyn Fn(f64) -> f64, o_min: f64, o_max: f64) -> Vec<Step> {
    let eps = 1e-9 * (o_max - o_min);
    let r = &d.readings;
    (0..r.len().saturating_sub(1))
        .filter(|&k| r[k + 1].pulse == r[k].pulse + 1)
        .filter_map(|k| {
            let (w0, w1) = (weight(r[k].g_s), weight(r[k + 1].g_s));
            let up = r[k + 1].polarity == Polarity::Set;
            let clipped = if up {
                w0 >= o_max - eps || w1 >= o_max - eps
            } else {
                w0 <= o_min + eps || w1 <= o_min + eps
            };
            let z = (k > 0 && r[k].pulse == r[k - 1].pulse + 1).then(|| weight(r[k - 1].g_s));
            (!clipped).then_some(Step {
                start: r[k].pulse,
                z,
                w: w0,
                y: if up { w1 - w0 } else { w0 - w1 },
                up,
            })
        })
        .collect()
}

/// Variance of the noise of one reading, weight units², from the residual steps of the
/// devices' fits: a reading shared by two successive steps enters the first with `+e` and
/// the second with `-e`, so successive residuals (signed as conductance changes) have
/// covariance `-read_var`, while the cycle-to-cycle noise of different pulses is independent.
/// 0 when the estimate is not positive.
fn reading_variance(own: &[OwnFit], steps_of: &[Vec<Step>]) -> (f64, f64) {
    let (mut sum, mut n) = (0.0, 0.0);
    let (mut sq, mut m) = (0.0, 0.0);
    for (o, steps) in own.iter().zip(steps_of) {
        let (device, cell) = own_device(o);
        let residual = |s: &Step| {
            let polarity = if s.up { Polarity::Set } else { Polarity::Reset };
            let r = s.y - device.mean_step(&cell, polarity, s.w);
            if s.up { r } else { -r }
        };
        for s in steps {
            sq += residual(s).powi(2);
            m += 1.0;
        }
        for pair in steps.windows(2) {
            if pair[1].start == pair[0].start + 1 {
                sum += residual(&pair[0]) * residual(&pair[1]);
                n += 1.0;
            }
        }
    }
    let read_var = if n > 0.0 { (-sum / n).max(0.0) } else { 0.0 };
    (read_var, if m > 0.0 { sq / m } else { 0.0 })
}

/// The steps with an earlier reading `z` that keeps them clear of the bounds: two predicted
/// steps from `z` plus three standard deviations of the residual steps stay inside the
/// device's lowest and highest weight. Choosing by `z` rather than by the step's own reading
/// leaves the noise of that reading unselected.
fn clear_by_instrument(steps: &[Step], o: &OwnFit, (o_min, o_max): (f64, f64)) -> Vec<Step> {
    let (device, cell) = own_device(o);
    let mean = |up: bool, w: f64| {
        let polarity = if up { Polarity::Set } else { Polarity::Reset };
        device.mean_step(&cell, polarity, w)
    };
    let rms = |up: bool| {
        let (sq, n) = steps
            .iter()
            .filter(|s| s.up == up)
            .fold((0.0, 0.0), |(sq, n), s| {
                (sq + (s.y - mean(s.up, s.w)).powi(2), n + 1.0)
            });
        (sq / n).sqrt()
    };
    let (sigma_up, sigma_down) = (rms(true), rms(false));
    steps
        .iter()
        .filter(|s| match s.z {
            Some(z) if s.up => z + 2.0 * mean(true, z).max(0.0) + 3.0 * sigma_up < o_max,
            Some(z) => z - 2.0 * mean(false, z).max(0.0) - 3.0 * sigma_down > o_min,
            None => false,
        })
        .copied()
        .collect()
}

/// Whether `steps` has enough of each polarity.
fn enough(steps: &[Step]) -> bool {
    let up = steps.iter().filter(|s| s.up).count();
    up.min(steps.len() - up) >= MIN_STEPS_PER_POLARITY
}

/// The steps a bound cannot have clipped: those whose predicted end, plus three standard
/// deviations of the device's residual steps of that polarity, stays inside the device's
/// lowest and highest weight (`o_min`, `o_max`). Clipping keeps only the short steps near a
/// bound, so without this the steps near the bounds would look too short.
fn unclipped(steps: &[Step], o: &OwnFit, (o_min, o_max): (f64, f64)) -> Vec<Step> {
    let (device, cell) = own_device(o);
    let mean = |s: &Step| {
        let polarity = if s.up { Polarity::Set } else { Polarity::Reset };
        device.mean_step(&cell, polarity, s.w)
    };
    let rms = |up: bool| {
        let (sq, n) = steps
            .iter()
            .filter(|s| s.up == up)
            .fold((0.0, 0.0), |(sq, n), s| {
                (sq + (s.y - mean(s)).powi(2), n + 1.0)
            });
        (sq / n).sqrt()
    };
    let (sigma_up, sigma_down) = (rms(true), rms(false));
    steps
        .iter()
        .filter(|s| {
            if s.up {
                s.w + mean(s) + 3.0 * sigma_up < o_max
            } else {
                s.w - mean(s) - 3.0 * sigma_down > o_min
            }
        })
        .copied()
        .collect()
}

fn shape_linear(shape: &Shape) -> (f64, f64) {
    match shape {
        Shape::Linear(u, d) => (*u, *d),
        _ => (0.0, 0.0),
    }
}

/// One device's model: bounds, scales and shape from its own steps.
fn fit_one(
    steps: &[Step],
    family: &str,
    (o_min, o_max): (f64, f64),
    nodes: usize,
    iv: bool,
) -> std::result::Result<OwnFit, String> {
    let up: Vec<(f64, f64)> = steps.iter().filter(|s| s.up).map(|s| (s.w, s.y)).collect();
    let line = |up: bool| -> std::result::Result<(f64, f64), String> {
        if iv {
            let pts: Vec<(f64, f64, f64)> = steps
                .iter()
                .filter(|s| s.up == up)
                .filter_map(|s| s.z.map(|z| (z, s.w, s.y)))
                .collect();
            line_iv(&pts)
        } else {
            let pts: Vec<(f64, f64)> = steps
                .iter()
                .filter(|s| s.up == up)
                .map(|s| (s.w, s.y))
                .collect();
            two_column(&pts, |w| w).ok_or_else(|| "its steps all start from one weight".to_string())
        }
    };
    let down: Vec<(f64, f64)> = steps.iter().filter(|s| !s.up).map(|s| (s.w, s.y)).collect();
    let range = o_max - o_min;
    let mut fit = OwnFit {
        b_min: o_min,
        b_max: o_max,
        s_up: 0.0,
        s_down: 0.0,
        shape: Shape::Plain,
    };
    match family {
        "constant_step" => {
            fit.s_up = mean(up.iter().map(|p| p.1));
            fit.s_down = mean(down.iter().map(|p| p.1));
        }
        "soft_bounds" => {
            let (a_u, b_u) = line(true)?;
            let (a_d, b_d) = line(false)?;
            if a_u <= 0.0 || b_u >= 0.0 {
                return Err(
                    "its up steps do not shrink towards the top of its window, as soft \
                            bounds need: try constant_step or linear_step"
                        .to_string(),
                );
            }
            if a_d <= 0.0 || b_d <= 0.0 {
                return Err(
                    "its down steps do not shrink towards the bottom of its window, as \
                            soft bounds need: try constant_step or linear_step"
                        .to_string(),
                );
            }
            fit.s_up = a_u;
            fit.s_down = a_d;
            fit.b_max = -a_u / b_u;
            fit.b_min = -a_d / b_d;
            fit.shape = Shape::SoftBounds;
        }
        "linear_step" => {
            let (a_u, b_u) = line(true)?;
            let (a_d, b_d) = line(false)?;
            if a_u <= 0.0 || a_d <= 0.0 {
                return Err("its fitted step at w = 0 is not positive: try another family".into());
            }
            fit.s_up = a_u;
            fit.s_down = a_d;
            // Slope -γ s / w_ref with the cell's own bounds as reference.
            fit.shape = Shape::Linear(-b_u * o_max / a_u, -b_d * o_min / a_d);
        }
        "exp_step" => {
            // Δ = s - s A e^{±γ 2 w / range}: linear in (s, s A) for a given γ.
            let fit_dir = |pts: &[(f64, f64)], sign: f64| {
                let basis = |g: f64, w: f64| (sign * g * 2.0 * w / range).exp();
                let sse = |g: f64| {
                    two_column(pts, |w| basis(g, w))
                        .map(|(c0, c1)| {
                            pts.iter()
                                .map(|&(w, y)| (y - c0 - c1 * basis(g, w)).powi(2))
                                .sum::<f64>()
                        })
                        .unwrap_or(f64::INFINITY)
                };
                let g = minimize_log(sse, 1e-3, 50.0);
                two_column(pts, |w| basis(g, w)).map(|(c0, c1)| (c0, -c1 / c0, g))
            };
            let (s_u, a_u, g_u) = fit_dir(&up, 1.0).ok_or("its up steps cannot be fitted")?;
            let (s_d, a_d, g_d) = fit_dir(&down, -1.0).ok_or("its down steps cannot be fitted")?;
            if s_u <= 0.0 || s_d <= 0.0 {
                return Err("its fitted step scale is not positive: try another family".into());
            }
            fit.s_up = s_u;
            fit.s_down = s_d;
            fit.shape = Shape::Exp(a_u, g_u, a_d, g_d);
        }
        "pow_step" => {
            // Δ⁺ = s ω^γ, Δ⁻ = s (1 - ω)^γ with ω = (b_max - w) / range: s by least squares
            // for a given γ.
            let fit_dir = |pts: &[(f64, f64)], up: bool| {
                let x = |w: f64| {
                    let omega = ((o_max - w) / range).clamp(0.0, 1.0);
                    if up { omega } else { 1.0 - omega }
                };
                let scale = |g: f64| {
                    let (num, den) = pts.iter().fold((0.0, 0.0), |(n, d), &(w, y)| {
                        let b = x(w).powf(g);
                        (n + b * y, d + b * b)
                    });
                    if den > 0.0 { num / den } else { 0.0 }
                };
                let sse = |g: f64| {
                    let s = scale(g);
                    pts.iter()
                        .map(|&(w, y)| (y - s * x(w).powf(g)).powi(2))
                        .sum::<f64>()
                };
                let g = minimize_log(sse, 1e-3, 20.0);
                (scale(g), g)
            };
            let (s_u, g_u) = fit_dir(&up, true);
            let (s_d, g_d) = fit_dir(&down, false);
            if s_u <= 0.0 || s_d <= 0.0 {
                return Err("its fitted step scale is not positive: try another family".into());
            }
            fit.s_up = s_u;
            fit.s_down = s_d;
            fit.shape = Shape::Pow(g_u, g_d);
        }
        _ => {
            let table = |pts: &[(f64, f64)]| hat_fit(pts, nodes, o_min, range);
            let (t_u, t_d) = (table(&up)?, table(&down)?);
            fit.s_up = t_u.iter().fold(0.0f64, |m, &v| m.max(v));
            fit.s_down = t_d.iter().fold(0.0f64, |m, &v| m.max(v));
            if fit.s_up <= 0.0 || fit.s_down <= 0.0 {
                return Err("its fitted step table is zero in one direction".into());
            }
            fit.shape = Shape::Table(t_u, t_d);
        }
    }
    if !(fit.s_up.is_finite() && fit.s_down.is_finite() && fit.s_up > 0.0 && fit.s_down > 0.0) {
        return Err(format!(
            "its fitted mean steps ({:e} up, {:e} down, weight units) are not positive: its \
             pulses do not move it as their polarity says; check the polarity column",
            fit.s_up, fit.s_down
        ));
    }
    Ok(fit)
}

/// The exponential step's shape (`A`, `γ` of each direction) is one for every device in
/// aihwkit (only the scales and bounds spread): refit it on all devices at once, each device
/// with its own scale (least squares for a given shape), by Nelder–Mead on `(A, ln γ)` from
/// the mean of the per-device fits; then each device's scales for that shape.
fn pool_exp_shape(own: &mut [OwnFit], steps_of: &[Vec<Step>]) {
    let sets = |own: &[OwnFit], up: bool| -> Vec<Vec<(f64, f64)>> {
        own.iter()
            .zip(steps_of)
            .map(|(o, steps)| {
                let sign = if up { 1.0 } else { -1.0 };
                let range = o.b_max - o.b_min;
                steps
                    .iter()
                    .filter(|s| s.up == up)
                    .map(|s| (sign * 2.0 * s.w / range, s.y))
                    .collect()
            })
            .collect()
    };
    // A device's scale for a shape, and its squared residuals.
    let scale = |pts: &[(f64, f64)], a: f64, g: f64| {
        let (num, den) = pts.iter().fold((0.0, 0.0), |(n, d), &(x, y)| {
            let f = 1.0 - a * (g * x).exp();
            (n + f * y, d + f * f)
        });
        let s = if den > 0.0 { num / den } else { 0.0 };
        let sq: f64 = pts
            .iter()
            .map(|&(x, y)| (y - s * (1.0 - a * (g * x).exp())).powi(2))
            .sum();
        (s, sq)
    };
    let n = own.len() as f64;
    for up in [true, false] {
        let data = sets(own, up);
        let (a0, g0) = own.iter().fold((0.0, 0.0), |(a, g), o| match o.shape {
            Shape::Exp(au, gu, _, _) if up => (a + au / n, g + gu / n),
            Shape::Exp(_, _, ad, gd) => (a + ad / n, g + gd / n),
            _ => (a, g),
        });
        let cost = |v: &[f64]| -> f64 {
            let (a, g) = (v[0], v[1].exp());
            data.iter().map(|pts| scale(pts, a, g).1).sum()
        };
        let best = nelder_mead(
            &cost,
            &[a0, g0.max(1e-3).ln()],
            &[0.1 * a0.abs().max(0.01), 0.1],
            400,
        );
        let (a, g) = (best[0], best[1].exp());
        for (o, pts) in own.iter_mut().zip(&data) {
            let s = scale(pts, a, g).0;
            if let Shape::Exp(au, gu, ad, gd) = &mut o.shape {
                if up {
                    (*au, *gu, o.s_up) = (a, g, s);
                } else {
                    (*ad, *gd, o.s_down) = (a, g, s);
                }
            }
        }
    }
}

/// Nelder–Mead minimisation of `f` from `x0` with initial simplex steps `step` (standard
/// coefficients; stops after `iterations` or when the simplex's values agree to 1e-12).
fn nelder_mead(f: &dyn Fn(&[f64]) -> f64, x0: &[f64], step: &[f64], iterations: usize) -> Vec<f64> {
    let n = x0.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = (0..=n)
        .map(|i| {
            let mut x = x0.to_vec();
            if i > 0 {
                x[i - 1] += step[i - 1];
            }
            let v = f(&x);
            (x, v)
        })
        .collect();
    for _ in 0..iterations {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (best, worst) = (simplex[0].1, simplex[n].1);
        if (worst - best).abs() <= 1e-12 * best.abs().max(1e-300) {
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|k| simplex[..n].iter().map(|p| p.0[k]).sum::<f64>() / n as f64)
            .collect();
        let toward = |t: f64| -> Vec<f64> {
            (0..n)
                .map(|k| centroid[k] + t * (simplex[n].0[k] - centroid[k]))
                .collect()
        };
        let reflected = toward(-1.0);
        let fr = f(&reflected);
        if fr < simplex[0].1 {
            let expanded = toward(-2.0);
            let fe = f(&expanded);
            simplex[n] = if fe < fr {
                (expanded, fe)
            } else {
                (reflected, fr)
            };
        } else if fr < simplex[n - 1].1 {
            simplex[n] = (reflected, fr);
        } else {
            let contracted = if fr < worst {
                toward(-0.5)
            } else {
                toward(0.5)
            };
            let fc = f(&contracted);
            if fc < worst.min(fr) {
                simplex[n] = (contracted, fc);
            } else {
                let first = simplex[0].0.clone();
                for p in simplex.iter_mut().skip(1) {
                    for (x, &x0) in p.0.iter_mut().zip(&first) {
                        *x = x0 + 0.5 * (*x - x0);
                    }
                    p.1 = f(&p.0);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex.swap_remove(0).0
}

/// A device and a cell holding one device's own fit, for its predicted mean steps.
fn own_device(o: &OwnFit) -> (PulsedDevice, PulsedState) {
    let (family, shape) = match &o.shape {
        Shape::Linear(gu, gd) => (
            StepFamily::LinearStep(LinearStepParams {
                gamma_up: *gu,
                gamma_down: *gd,
                gamma_up_dtod: 0.0,
                gamma_down_dtod: 0.0,
                allow_increasing: true,
                mean_bound_reference: false,
                mult_noise: true,
            }),
            CellShape::Slopes {
                up: -gu * o.s_up / o.b_max,
                down: -gd * o.s_down / o.b_min,
            },
        ),
        Shape::SoftBounds => (
            StepFamily::SoftBounds(SoftBoundsParams { mult_noise: true }),
            CellShape::Slopes {
                up: -o.s_up / o.b_max,
                down: -o.s_down / o.b_min,
            },
        ),
        Shape::Exp(a_u, g_u, a_d, g_d) => (
            StepFamily::ExpStep(ExpStepParams {
                a_up: *a_u,
                gamma_up: *g_u,
                a_down: *a_d,
                gamma_down: *g_d,
                a: 1.0,
                b: 0.0,
                dw_min_std_add: 0.0,
                dw_min_std_slope: 0.0,
            }),
            CellShape::Plain,
        ),
        Shape::Pow(u, d) => (
            StepFamily::PowStep(PowStepParams {
                pow_gamma: 1.0,
                pow_gamma_dtod: 0.0,
                pow_up_down: 0.0,
                pow_up_down_dtod: 0.0,
            }),
            CellShape::Exponents { up: *u, down: *d },
        ),
        Shape::Table(u, d) => (
            StepFamily::PiecewiseStep(PiecewiseStepParams {
                piecewise_up: u.iter().map(|v| v / o.s_up).collect(),
                piecewise_down: d.iter().map(|v| v / o.s_down).collect(),
            }),
            CellShape::Plain,
        ),
        Shape::Plain => (StepFamily::ConstantStep, CellShape::Plain),
    };
    let params = PulsedParams::noise_free((0.0, 1.0), (o.b_min, o.b_max), o.s_up, (1.0, 1.0));
    let cell = PulsedState {
        w: 0.0,
        w_seen: 0.0,
        b_min: o.b_min,
        b_max: o.b_max,
        scale_up: o.s_up,
        scale_down: o.s_down,
        shape,
        stuck: None,
        diffusion_rate: 0.0,
        decay_scale: 1.0,
        reset_bias: 0.0,
    };
    (PulsedDevice::new(params, family), cell)
}

/// The nominal value, asymmetry and spreads of per-device (up, down) pairs drawn as aihwkit
/// draws step scales: `up = (β_up + g + r) x`, `down = (β_down + g - r) x` with gain
/// `g = 1 + dtod ξ`, `r = up_down_dtod ξ` and the biases of `up_down` (see [`super::pulsed`]).
struct UpDown {
    nominal: f64,
    up_down: f64,
    dtod: f64,
    up_down_dtod: f64,
}

fn split_up_down(pairs: &[(f64, f64)]) -> UpDown {
    // mean of the pair = (g - |up_down| / 2) x, difference = (up_down + 2 r) x.
    let means: Vec<f64> = pairs.iter().map(|(u, d)| 0.5 * (u + d)).collect();
    let diffs: Vec<f64> = pairs.iter().map(|(u, d)| u - d).collect();
    let (m, m_sd) = mean_std(&means);
    let (d, d_sd) = mean_std(&diffs);
    let nominal = m + 0.5 * d.abs();
    UpDown {
        nominal,
        up_down: d / nominal,
        dtod: m_sd / nominal,
        up_down_dtod: d_sd / (2.0 * nominal),
    }
}

/// Gaussian log-likelihood of residuals `r_i` with standard deviations `σ u_i`, σ at its
/// maximum-likelihood value.
#[derive(Default)]
struct Likelihood {
    n: f64,
    sum_sq: f64,
    sum_log_u: f64,
}

impl Likelihood {
    fn add(&mut self, r: f64, u: f64) {
        self.n += 1.0;
        self.sum_sq += (r / u).powi(2);
        self.sum_log_u += u.ln();
    }

    fn sigma(&self) -> f64 {
        (self.sum_sq / self.n).sqrt()
    }

    fn log_likelihood(&self) -> f64 {
        -self.sum_log_u - 0.5 * self.n * (self.sum_sq / self.n).ln()
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = values.fold((0.0, 0.0), |(s, n), v| (s + v, n + 1.0));
    s / n
}

/// Mean and sample standard deviation (0 for a single value).
fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let m = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (m, 0.0);
    }
    let var = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, var.sqrt())
}

/// Straight line `y = a + b w` through `(z, w, y)` points whose weights `w` are noisy
/// readings that the steps `y` share (errors in variables, which would bias least squares),
/// by instrumental variables: `z`, an earlier reading, follows `w` but not its noise, so
/// `b = cov(z, y) / cov(z, w)`.
fn line_iv(pts: &[(f64, f64, f64)]) -> std::result::Result<(f64, f64), String> {
    let n = pts.len() as f64;
    let mean = |k: usize| pts.iter().map(|p| [p.0, p.1, p.2][k]).sum::<f64>() / n;
    let (mz, mw, my) = (mean(0), mean(1), mean(2));
    let (szw, szy) = pts.iter().fold((0.0, 0.0), |(szw, szy), &(z, w, y)| {
        (szw + (z - mz) * (w - mw), szy + (z - mz) * (y - my))
    });
    if !(szw > 0.0 && szw.is_finite()) {
        return Err("its steps start from too narrow a range of weights to fit a slope".into());
    }
    let b = szy / szw;
    Ok((my - b * mw, b))
}

/// Least squares `y = c0 + c1 f(w)` (None when f does not vary over the points).
fn two_column(pts: &[(f64, f64)], f: impl Fn(f64) -> f64) -> Option<(f64, f64)> {
    let n = pts.len() as f64;
    let mx = pts.iter().map(|&(w, _)| f(w)).sum::<f64>() / n;
    let my = pts.iter().map(|&(_, y)| y).sum::<f64>() / n;
    let (sxx, sxy) = pts.iter().fold((0.0, 0.0), |(sxx, sxy), &(w, y)| {
        let dx = f(w) - mx;
        (sxx + dx * dx, sxy + dx * (y - my))
    });
    if !(sxx > 0.0 && sxx.is_finite()) {
        return None;
    }
    let c1 = sxy / sxx;
    Some((my - c1 * mx, c1))
}

/// The minimum of `f` over `[lo, hi]` (lo > 0): a grid of 48 points even in log scale, then
/// a golden-section search between the neighbours of the best grid point.
fn minimize_log(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> f64 {
    const GRID: usize = 48;
    let (llo, lhi) = (lo.ln(), hi.ln());
    let at = |i: usize| llo + (lhi - llo) * i as f64 / (GRID - 1) as f64;
    let best = (0..GRID)
        .map(|i| (i, f(at(i).exp())))
        .fold(
            (0, f64::INFINITY),
            |b, (i, v)| if v < b.1 { (i, v) } else { b },
        )
        .0;
    let (mut a, mut b) = (at(best.saturating_sub(1)), at((best + 1).min(GRID - 1)));
    let phi = 0.5 * (5f64.sqrt() - 1.0);
    let mut c = b - phi * (b - a);
    let mut d = a + phi * (b - a);
    let (mut fc, mut fd) = (f(c.exp()), f(d.exp()));
    for _ in 0..60 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - phi * (b - a);
            fc = f(c.exp());
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + phi * (b - a);
            fd = f(d.exp());
        }
    }
    (0.5 * (a + b)).exp()
}

/// Least-squares node values of a piecewise-linear function on `nodes` even nodes over
/// `[w0, w0 + range]` through `(w, y)` points (a node without data takes its neighbours'
/// interpolation through a tiny smoothness penalty).
fn hat_fit(
    pts: &[(f64, f64)],
    nodes: usize,
    w0: f64,
    range: f64,
) -> std::result::Result<Vec<f64>, String> {
    let n = nodes;
    let sections = (n - 1) as f64;
    let mut a = vec![0.0; n * n];
    let mut rhs = vec![0.0; n];
    for &(w, y) in pts {
        let x = ((w - w0) / range * sections).clamp(0.0, sections);
        let i = (x.floor() as usize).min(n - 2);
        let q = x - i as f64;
        let (wi, wj) = (1.0 - q, q);
        a[i * n + i] += wi * wi;
        a[i * n + i + 1] += wi * wj;
        a[(i + 1) * n + i] += wi * wj;
        a[(i + 1) * n + i + 1] += wj * wj;
        rhs[i] += wi * y;
        rhs[i + 1] += wj * y;
    }
    // Second-difference penalty, small against the data's weight.
    let lambda = 1e-6 * (0..n).map(|i| a[i * n + i]).fold(0.0, f64::max).max(1e-12);
    for k in 1..n - 1 {
        let idx = [k - 1, k, k + 1];
        let coef = [1.0, -2.0, 1.0];
        for (p, &ip) in idx.iter().enumerate() {
            for (q, &iq) in idx.iter().enumerate() {
                a[ip * n + iq] += lambda * coef[p] * coef[q];
            }
        }
    }
    solve(&mut a, &mut rhs, n).ok_or_else(|| "its step table cannot be fitted".to_string())
}

/// Solve the dense `n x n` system `a x = b` by Gaussian elimination with partial pivoting.
fn solve(a: &mut [f64], b: &mut [f64], n: usize) -> Option<Vec<f64>> {
    for col in 0..n {
        let pivot =
            (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        if a[pivot * n + col].abs() < 1e-300 {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(col * n + k, pivot * n + k);
            }
            b.swap(col, pivot);
        }
        for row in col + 1..n {
            let f = a[row * n + col] / a[col * n + col];
            for k in col..n {
                a[row * n + k] -= f * a[col * n + k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row * n + k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row * n + row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// The pulse sequence of `cycles` cycles of `up` potentiating then `down` depressing pulses.
pub fn cycle_schedule(cycles: usize, up: usize, down: usize) -> Vec<Polarity> {
    (0..cycles)
        .flat_map(|_| {
            std::iter::repeat_n(Polarity::Set, up).chain(std::iter::repeat_n(Polarity::Reset, down))
        })
        .collect()
}

/// The conductance of one freshly fabricated cell of `device` (at its lower bound) before any
/// pulse and after each pulse of `schedule`, siemens (read without read noise): a simulated
/// measurement of the kind [`fit`] takes.
pub fn simulate_response<R: Rng + ?Sized>(
    device: &PulsedDevice,
    schedule: &[Polarity],
    rng: &mut R,
) -> Vec<f64> {
    let mut cell = device.fabricate(rng);
    let mut out = Vec::with_capacity(schedule.len() + 1);
    out.push(device.conductance_at(&cell, 0.0));
    for &polarity in schedule {
        let pulse: Pulse = device.nominal_pulse(polarity);
        device.apply_pulse(&mut cell, &pulse, rng);
        out.push(device.conductance_at(&cell, 0.0));
    }
    out
}

/// `responses` (one conductance sequence per device, as [`simulate_response`] returns, for
/// the pulses of `schedule`) as measurement CSV text (`conductance_s` column).
pub fn to_csv(schedule: &[Polarity], responses: &[Vec<f64>]) -> String {
    let mut text = String::from("device,pulse,polarity,conductance_s\n");
    for (d, g) in responses.iter().enumerate() {
        for (k, g_s) in g.iter().enumerate() {
            let polarity = match k.checked_sub(1).map(|i| schedule[i]) {
                Some(Polarity::Reset) => "down",
                _ => "up",
            };
            text.push_str(&format!("d{d},{k},{polarity},{g_s:e}\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimize_log_finds_a_smooth_minimum() {
        let x = minimize_log(|g| (g.ln() - 0.7f64.ln()).powi(2), 1e-3, 50.0);
        assert!((x - 0.7).abs() < 1e-6, "{x}");
    }

    #[test]
    fn nelder_mead_finds_the_minimum_of_a_valley() {
        let f = |v: &[f64]| (v[0] - 1.0).powi(2) + 10.0 * (v[1] - v[0] * v[0]).powi(2);
        let x = nelder_mead(&f, &[-1.0, 2.0], &[0.5, 0.5], 2000);
        assert!(
            (x[0] - 1.0).abs() < 1e-3 && (x[1] - 1.0).abs() < 1e-3,
            "{x:?}"
        );
    }

    #[test]
    fn hat_fit_recovers_a_piecewise_linear_function() {
        let f = |x: f64| {
            if x < 0.5 {
                1.0 - x
            } else {
                0.5 + 0.2 * (x - 0.5)
            }
        };
        let pts: Vec<(f64, f64)> = (0..=200)
            .map(|i| i as f64 / 200.0)
            .map(|x| (x, f(x)))
            .collect();
        let nodes = hat_fit(&pts, 3, 0.0, 1.0).unwrap();
        for (v, want) in nodes.iter().zip([1.0, 0.5, 0.6]) {
            assert!((v - want).abs() < 1e-4, "{nodes:?}");
        }
    }

    #[test]
    fn up_down_split_inverts_aihwkits_draw() {
        // up_down = 0.2: down steps shortened by 0.2 dw_min, no spread.
        let s = split_up_down(&[(0.01, 0.008), (0.01, 0.008)]);
        assert!((s.nominal - 0.01).abs() < 1e-12);
        assert!((s.up_down - 0.2).abs() < 1e-12);
        assert_eq!(s.dtod, 0.0);
        let s = split_up_down(&[(0.008, 0.01)]);
        assert!((s.up_down + 0.2).abs() < 1e-12);
    }
}
