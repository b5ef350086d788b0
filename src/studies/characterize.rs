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
//!    and LRS/HRS resistance distributions of binary operation.
//!
//! Each protocol writes `<name>.csv`, `<name>.png` and `<name>.svg`; a protocol that does not
//! apply to a device is skipped with a one-line reason. Every random stream is derived from
//! (seed, protocol, item indices) with [`crate::rng::stream`], so the output is identical for
//! any number of threads.

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
/// Device traces drawn in the pulse plot (all of them are in the CSV).
const MAX_TRACES_PLOTTED: usize = 24;
/// Points of each measured switching sweep.
const SWEEP_POINTS: usize = 13;
/// Points of each analytic switching curve.
const CURVE_POINTS: usize = 150;
/// Switching probabilities spanned by the sweeps.
const P_SWEEP_RANGE: (f64, f64) = (0.02, 0.98);
/// Fractions of the nominal window used as programming targets.
const TARGET_FRACTIONS: [f64; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];
/// Histogram bins.
const HISTOGRAM_BINS: usize = 60;
/// Times after programming of the drift protocol: log-spaced from 1 s to 1e7 s.
const DRIFT_DECADES: (f64, f64) = (0.0, 7.0);
/// Points per decade of the drift protocol.
const DRIFT_POINTS_PER_DECADE: usize = 4;
/// Factor of empty space above the highest bar or point, for the legend.
const LEGEND_HEADROOM: f64 = 1.35;
/// Compliance currents of the binary RRAM distributions, relative to the preset's.
const COMPLIANCE_FACTORS: [f64; 3] = [0.3, 1.0, 3.0];

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
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 4] = [
        Protocol::Pulses,
        Protocol::Switching,
        Protocol::Drift,
        Protocol::Programming,
    ];

    /// File stem and name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Pulses => "pulses",
            Protocol::Switching => "switching",
            Protocol::Drift => "drift",
            Protocol::Programming => "programming",
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
        Protocol::Pulses => pulses(device, label, config, out),
        Protocol::Switching => switching(device, label, config, out),
        Protocol::Drift => drift(device, label, config, out),
        Protocol::Programming => programming(device, label, config, out),
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

// ---- pulses ------------------------------------------------------------------------------

/// Conductance traces of a pulse train: `traces[d][k]` is device d after k pulses
/// (k = 0 is the starting state; the first `pulses_per_phase` are SET, the rest RESET).
#[derive(Clone, Debug)]
pub struct PulseTrain {
    /// Pulses in each of the SET and RESET phases.
    pub pulses_per_phase: usize,
    /// Conductance after each pulse, per device, siemens.
    pub traces: Vec<Vec<f64>>,
}

/// Apply `pulses_per_phase` nominal SET then as many RESET pulses to `devices` devices,
/// each starting at the bottom of its window.
pub fn pulse_train(device: &AnyDevice, devices: usize, seed: u64) -> PulseTrain {
    let pulses_per_phase = (device.pulses_across_window() as usize * 5 / 4).max(10);
    let traces = (0..devices)
        .into_par_iter()
        .map(|d| {
            let mut rng = stream(seed, &[Protocol::Pulses.stream_id(), d as u64]);
            let mut state = device.fabricate(&mut rng);
            if !device.is_analog() {
                device.program_binary(&mut state, false, &mut rng);
            }
            let mut trace = vec![device.conductance_at(&state, 0.0)];
            for polarity in [Polarity::Set, Polarity::Reset] {
                let pulse = device.nominal_pulse(polarity);
                for _ in 0..pulses_per_phase {
                    device.apply_pulse(&mut state, &pulse, &mut rng);
                    trace.push(device.conductance_at(&state, 0.0));
                }
            }
            trace
        })
        .collect();
    PulseTrain {
        pulses_per_phase,
        traces,
    }
}

fn pulses(
    device: &AnyDevice,
    label: &str,
    config: &CharacterizeConfig,
    out: &Path,
) -> Result<Outcome> {
    let train = pulse_train(device, config.devices, config.seed);
    let mut table = Table::new(&["device", "pulse", "polarity", "g_s"]);
    for (d, trace) in train.traces.iter().enumerate() {
        for (k, g) in trace.iter().enumerate() {
            let polarity = match k {
                0 => "start",
                k if k <= train.pulses_per_phase => "set",
                _ => "reset",
            };
            table.push_row(vec![
                d.to_string(),
                k.to_string(),
                polarity.to_string(),
                g.to_string(),
            ])?;
        }
    }
    let n = train.pulses_per_phase;
    let mut fig = Figure::new(
        format!(
            "{label}: {n} SET then {n} RESET nominal pulses, {} devices",
            config.devices
        ),
        "pulse number",
        "conductance (µS)",
    );
    for (d, trace) in train.traces.iter().take(MAX_TRACES_PLOTTED).enumerate() {
        let name = if d == 0 { "single devices" } else { "" };
        fig.series
            .push(Series::new(name, indexed_micro(trace), Style::Trace, 0));
    }
    let len = train.traces[0].len();
    let mean: Vec<f64> = (0..len)
        .map(|k| train.traces.iter().map(|t| t[k]).sum::<f64>() / train.traces.len() as f64)
        .collect();
    fig.series.push(Series::new(
        "mean over devices",
        indexed_micro(&mean),
        Style::Line,
        1,
    ));
    save(&fig, &out.join("pulses"))?;
    Ok(Outcome::Written(written(out, "pulses", &table)?))
}

fn indexed_micro(values: &[f64]) -> Vec<(f64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(k, g)| (k as f64, g * MICRO))
        .collect()
}

// ---- switching ---------------------------------------------------------------------------

/// Devices prepared for switching trials of one polarity: each in the state the pulse can
/// switch (HRS/AP before a SET, LRS/P before a RESET).
struct SwitchingBench<'a> {
    device: &'a AnyDevice,
    polarity: Polarity,
    states: Vec<AnyState>,
}

impl SwitchingBench<'_> {
    /// Analytic switching probability averaged over the prepared devices.
    fn p_model(&self, amplitude_v: f64, width_s: f64) -> f64 {
        let pulse = Pulse {
            polarity: self.polarity,
            amplitude_v,
            width_s,
        };
        let total: f64 = self
            .states
            .iter()
            .map(|s| self.device.switching_probability(s, &pulse).unwrap_or(0.0))
            .sum();
        total / self.states.len() as f64
    }

    /// Amplitude at which the mean probability reaches `p` for this width (bisection).
    fn amplitude_for(&self, p: f64, width_s: f64, start_v: f64) -> Option<f64> {
        let mut hi = start_v.max(1e-3);
        while self.p_model(hi, width_s) < p {
            hi *= 2.0;
            if hi > 1e4 {
                return None;
            }
        }
        let mut lo = 0.0;
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if self.p_model(mid, width_s) < p {
                lo = mid
            } else {
                hi = mid
            }
        }
        Some(0.5 * (lo + hi))
    }

    /// Width at which the mean probability reaches `p` at this amplitude (log bisection).
    fn width_for(&self, p: f64, amplitude_v: f64) -> Option<f64> {
        let (mut lo, mut hi) = (1e-15f64.ln(), 1e6f64.ln());
        if self.p_model(amplitude_v, hi.exp()) < p {
            return None;
        }
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if self.p_model(amplitude_v, mid.exp()) < p {
                lo = mid
            } else {
                hi = mid
            }
        }
        Some((0.5 * (lo + hi)).exp())
    }

    /// Fraction of `trials` pulses that switch (trial k on device k mod N).
    fn measure(
        &self,
        amplitude_v: f64,
        width_s: f64,
        trials: usize,
        seed: u64,
        path: [u64; 3],
    ) -> usize {
        let pulse = Pulse {
            polarity: self.polarity,
            amplitude_v,
            width_s,
        };
        (0..trials)
            .into_par_iter()
            .filter(|&k| {
                let id = Protocol::Switching.stream_id();
                let mut rng = stream(seed, &[id, path[0], path[1], path[2], k as u64]);
                let mut state = self.states[k % self.states.len()].clone();
                self.device
                    .apply_pulse(&mut state, &pulse, &mut rng)
                    .switched
            })
            .count()
    }
}

fn prepare_bench<'a>(
    device: &'a AnyDevice,
    polarity: Polarity,
    config: &CharacterizeConfig,
) -> SwitchingBench<'a> {
    let states = (0..config.devices)
        .map(|d| {
            let id = Protocol::Switching.stream_id();
            let mut rng = stream(config.seed, &[id, polarity as u64, d as u64]);
            let mut state = device.fabricate(&mut rng);
            device.program_binary(&mut state, polarity == Polarity::Reset, &mut rng);
            state
        })
        .collect();
    SwitchingBench {
        device,
        polarity,
        states,
    }
}

/// One sweep (amplitude or width) of one polarity: measured points and the analytic curve.
struct Sweep {
    polarity: Polarity,
    /// (amplitude V, width s, switched, p_model) per measured point.
    points: Vec<(f64, f64, usize, f64)>,
    /// (x, p_model) dense curve, x = amplitude or width.
    curve: Vec<(f64, f64)>,
}

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| a + (b - a) * i as f64 / (n - 1) as f64)
        .collect()
}

fn logspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    linspace(a.ln(), b.ln(), n)
        .into_iter()
        .map(f64::exp)
        .collect()
}

fn switching(
    device: &AnyDevice,
    label: &str,
    config: &CharacterizeConfig,
    out: &Path,
) -> Result<Outcome> {
    if !device.has_stochastic_switching() {
        return Ok(Outcome::Skipped(match device {
            AnyDevice::Pcm(_) => {
                "PCM SET is gradual crystallisation, not a binary switching event \
                                  (see the pulses protocol)"
                    .to_string()
            }
            _ => "the ideal device switches deterministically".to_string(),
        }));
    }
    let mut by_amplitude = Vec::new();
    let mut by_width = Vec::new();
    for (pi, polarity) in [Polarity::Set, Polarity::Reset].into_iter().enumerate() {
        let bench = prepare_bench(device, polarity, config);
        let nominal = device.nominal_pulse(polarity);
        let w = nominal.width_s;
        let (Some(v_lo), Some(v_hi), Some(v50)) = (
            bench.amplitude_for(P_SWEEP_RANGE.0, w, nominal.amplitude_v),
            bench.amplitude_for(P_SWEEP_RANGE.1, w, nominal.amplitude_v),
            bench.amplitude_for(0.5, w, nominal.amplitude_v),
        ) else {
            bail!(
                "the {polarity:?} switching probability never reaches 98 % below 10 kV: check the kinetics parameters"
            );
        };
        let amps = linspace(v_lo, v_hi, SWEEP_POINTS);
        let measure = |amp: f64, width: f64, sweep: u64, i: usize| {
            let switched = bench.measure(
                amp,
                width,
                config.trials,
                config.seed,
                [pi as u64, sweep, i as u64],
            );
            (amp, width, switched, bench.p_model(amp, width))
        };
        by_amplitude.push(Sweep {
            polarity,
            points: amps
                .iter()
                .enumerate()
                .map(|(i, &a)| measure(a, w, 0, i))
                .collect(),
            curve: linspace(v_lo, v_hi, CURVE_POINTS)
                .into_iter()
                .map(|a| (a, bench.p_model(a, w)))
                .collect(),
        });
        let (Some(w_lo), Some(w_hi)) = (
            bench.width_for(P_SWEEP_RANGE.0, v50),
            bench.width_for(P_SWEEP_RANGE.1, v50),
        ) else {
            bail!(
                "the {polarity:?} switching probability at {v50:.3} V never reaches 98 % within 1e6 s"
            );
        };
        let widths = logspace(w_lo, w_hi, SWEEP_POINTS);
        by_width.push(Sweep {
            polarity,
            points: widths
                .iter()
                .enumerate()
                .map(|(i, &wd)| measure(v50, wd, 1, i))
                .collect(),
            curve: logspace(w_lo, w_hi, CURVE_POINTS)
                .into_iter()
                .map(|wd| (wd, bench.p_model(v50, wd)))
                .collect(),
        });
    }
    let mut table = Table::new(&[
        "polarity",
        "sweep",
        "amplitude",
        "width_s",
        "trials",
        "switched",
        "p_measured",
        "p_model",
    ]);
    for (sweep_name, sweeps) in [("amplitude", &by_amplitude), ("width", &by_width)] {
        for sweep in sweeps {
            for &(a, w, switched, p_model) in &sweep.points {
                let p = switched as f64 / config.trials as f64;
                table.push_row(vec![
                    polarity_name(sweep.polarity).to_string(),
                    sweep_name.to_string(),
                    a.to_string(),
                    w.to_string(),
                    config.trials.to_string(),
                    switched.to_string(),
                    p.to_string(),
                    p_model.to_string(),
                ])?;
            }
        }
    }
    let amp_fig = switching_figure(
        format!(
            "{label}: switching probability vs amplitude ({} trials/point)",
            config.trials
        ),
        "pulse amplitude (V)",
        &by_amplitude,
        |p| p.0,
        config.trials,
        false,
    );
    let width_fig = switching_figure(
        format!("{label}: switching probability vs width (at the 50 % amplitude)"),
        "pulse width (s)",
        &by_width,
        |p| p.1,
        config.trials,
        true,
    );
    save_panels(&[amp_fig, width_fig], 2, &out.join("switching"))?;
    Ok(Outcome::Written(written(out, "switching", &table)?))
}

fn polarity_name(p: Polarity) -> &'static str {
    match p {
        Polarity::Set => "set",
        Polarity::Reset => "reset",
    }
}

fn switching_figure(
    title: String,
    x_label: &str,
    sweeps: &[Sweep],
    x_of: fn(&(f64, f64, usize, f64)) -> f64,
    trials: usize,
    log_x: bool,
) -> Figure {
    let mut fig = Figure::new(title, x_label, "switching probability");
    fig.log_x = log_x;
    fig.y_range = Some((-0.03, LEGEND_HEADROOM));
    for (c, sweep) in sweeps.iter().enumerate() {
        let name = polarity_name(sweep.polarity).to_uppercase();
        let pts: Vec<(f64, f64)> = sweep
            .points
            .iter()
            .map(|p| (x_of(p), p.2 as f64 / trials as f64))
            .collect();
        let err: Vec<f64> = pts
            .iter()
            .map(|&(_, p)| (p * (1.0 - p) / trials as f64).sqrt())
            .collect();
        fig.series.push(
            Series::new(
                format!("{name} measured (±1σ binomial)"),
                pts,
                Style::Points,
                c,
            )
            .with_errors(err),
        );
        fig.series.push(Series::new(
            format!("{name} model"),
            sweep.curve.clone(),
            Style::Line,
            c,
        ));
    }
    fig
}

// ---- drift -------------------------------------------------------------------------------

/// Statistics of reads at one time after programming to one target.
#[derive(Clone, Debug)]
pub struct DriftPoint {
    /// Programming target, siemens.
    pub target_s: f64,
    /// Time after programming, seconds.
    pub t_s: f64,
    /// Mean of the noisy reads over devices, siemens.
    pub g_mean_s: f64,
    /// Standard deviation of the noisy reads over devices, siemens.
    pub g_std_s: f64,
    /// Mean of the noise-free (drifted) conductance, siemens.
    pub g_noise_free_mean_s: f64,
}

/// Program `devices` devices to each target, then read them at log-spaced times.
pub fn drift_series(
    device: &AnyDevice,
    targets_s: &[f64],
    devices: usize,
    seed: u64,
) -> Vec<DriftPoint> {
    let n_t = (DRIFT_DECADES.1 - DRIFT_DECADES.0) as usize * DRIFT_POINTS_PER_DECADE + 1;
    let times: Vec<f64> = linspace(DRIFT_DECADES.0, DRIFT_DECADES.1, n_t)
        .into_iter()
        .map(|e| 10f64.powf(e))
        .collect();
    let mut points = Vec::new();
    for (ti, &target) in targets_s.iter().enumerate() {
        // reads[d][k]: (noisy read, noise-free conductance) of device d at time k.
        let reads: Vec<Vec<(f64, f64)>> = (0..devices)
            .into_par_iter()
            .map(|d| {
                let mut rng = stream(seed, &[Protocol::Drift.stream_id(), ti as u64, d as u64]);
                let mut state = device.fabricate(&mut rng);
                device.program(&mut state, target, &mut rng);
                times
                    .iter()
                    .map(|&t| {
                        (
                            device.read(&mut state, t, &mut rng),
                            device.conductance_at(&state, t),
                        )
                    })
                    .collect()
            })
            .collect();
        for (k, &t) in times.iter().enumerate() {
            let noisy: Vec<f64> = reads.iter().map(|r| r[k].0).collect();
            let (mean, std) = mean_std(&noisy);
            let clean = reads.iter().map(|r| r[k].1).sum::<f64>() / devices as f64;
            points.push(DriftPoint {
                target_s: target,
                t_s: t,
                g_mean_s: mean,
                g_std_s: std,
                g_noise_free_mean_s: clean,
            });
        }
    }
    points
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

fn drift(
    device: &AnyDevice,
    label: &str,
    config: &CharacterizeConfig,
    out: &Path,
) -> Result<Outcome> {
    if !device.drifts() {
        return Ok(Outcome::Skipped(format!(
            "the {} model has no conductance drift",
            device.model_name()
        )));
    }
    let (g_lo, g_hi) = device.nominal_window();
    let targets: Vec<f64> = [0.1, 0.25, 0.5, 0.75, 1.0]
        .iter()
        .map(|f| g_lo + f * (g_hi - g_lo))
        .collect();
    let points = drift_series(device, &targets, config.devices, config.seed);
    let mut table = Table::new(&[
        "target_s",
        "t_s",
        "devices",
        "g_mean_s",
        "g_std_s",
        "g_noise_free_mean_s",
    ]);
    for p in &points {
        table.push_numbers(&[
            p.target_s,
            p.t_s,
            config.devices as f64,
            p.g_mean_s,
            p.g_std_s,
            p.g_noise_free_mean_s,
        ])?;
    }
    let mut fig = Figure::new(
        format!(
            "{label}: drift after programming, mean ± std of reads over {} devices",
            config.devices
        ),
        "time after programming (s)",
        "read conductance (µS)",
    );
    fig.log_x = true;
    fig.log_y = true;
    for (c, &target) in targets.iter().enumerate() {
        let sel: Vec<&DriftPoint> = points.iter().filter(|p| p.target_s == target).collect();
        let pts = sel.iter().map(|p| (p.t_s, p.g_mean_s * MICRO)).collect();
        let err = sel.iter().map(|p| p.g_std_s * MICRO).collect();
        let name = format!("target {:.1} µS", target * MICRO);
        fig.series
            .push(Series::new(name, pts, Style::LinePoints, c).with_errors(err));
    }
    let lowest = points
        .iter()
        .map(|p| p.g_mean_s)
        .fold(f64::INFINITY, f64::min);
    let highest = points.iter().map(|p| p.g_mean_s).fold(0.0, f64::max);
    // Log axis: room below the lowest mean for its error bars and above for the legend.
    fig.y_range = Some((0.4 * lowest * MICRO, 3.0 * highest * MICRO));
    save(&fig, &out.join("drift"))?;
    Ok(Outcome::Written(written(out, "drift", &table)?))
}

// ---- programming -------------------------------------------------------------------------

/// One programmed sample.
#[derive(Clone, Debug)]
struct Sample {
    kind: String,
    target_s: f64,
    g_s: f64,
}

/// Histogram of `values` with `bins` bins whose centres run from `lo` to `hi` (so values at
/// the ends sit at bin centres): (bin centre, count) per bin.
pub fn histogram(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<(f64, f64)> {
    let bins = bins.max(2);
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        let half = lo.abs().max(1e-12) * 0.01;
        (lo - half, hi + half)
    };
    let width = (hi - lo) / (bins - 1) as f64;
    let start = lo - 0.5 * width;
    let mut counts = vec![0.0; bins];
    for &v in values {
        let i = (((v - start) / width).max(0.0) as usize).min(bins - 1);
        counts[i] += 1.0;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (lo + i as f64 * width, c))
        .collect()
}

/// Leave room above the data of a histogram for the legend (drawn in the upper right).
fn legend_headroom(fig: &mut Figure) {
    let top = fig
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    fig.y_range = Some((0.0, LEGEND_HEADROOM * top.max(1.0)));
}

fn analog_samples(device: &AnyDevice, config: &CharacterizeConfig) -> Vec<Sample> {
    let (g_lo, g_hi) = device.nominal_window();
    TARGET_FRACTIONS
        .iter()
        .enumerate()
        .flat_map(|(ti, f)| {
            let target = g_lo + f * (g_hi - g_lo);
            (0..config.trials)
                .into_par_iter()
                .map(move |s| {
                    let mut rng = stream(
                        config.seed,
                        &[Protocol::Programming.stream_id(), 0, ti as u64, s as u64],
                    );
                    let mut state = device.fabricate(&mut rng);
                    device.program(&mut state, target, &mut rng);
                    Sample {
                        kind: "analog".to_string(),
                        target_s: target,
                        g_s: device.conductance_at(&state, 0.0),
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One binary distribution to sample: the state programmed and, for RRAM, the compliance
/// current of the LRS.
#[derive(Clone, Copy, Debug)]
struct BinaryKind {
    high: bool,
    compliance_a: Option<f64>,
}

impl BinaryKind {
    fn label(&self, device: &AnyDevice) -> String {
        match (self.high, self.compliance_a, device) {
            (true, Some(i_cc), _) => format!("LRS, I_cc = {:.0} µA", i_cc * MICRO),
            (true, None, AnyDevice::Mram(_)) => "LRS (P)".to_string(),
            (false, _, AnyDevice::Mram(_)) => "HRS (AP)".to_string(),
            (true, None, _) => "LRS".to_string(),
            (false, _, _) => "HRS".to_string(),
        }
    }

    fn program(&self, device: &AnyDevice, state: &mut AnyState, rng: &mut XbarRng) {
        match (device, state, self.compliance_a) {
            (AnyDevice::Rram(rram), AnyState::Rram(s), Some(i_cc)) => {
                rram.program_binary_with_compliance(s, self.high, i_cc, rng);
            }
            (_, state, _) => {
                device.program_binary(state, self.high, rng);
            }
        }
    }
}

/// The binary distributions of a device: LRS at several compliance currents and HRS for
/// RRAM, P and AP for an MTJ.
fn binary_kinds(device: &AnyDevice) -> Vec<BinaryKind> {
    let mut kinds: Vec<BinaryKind> = match device {
        AnyDevice::Rram(rram) => COMPLIANCE_FACTORS
            .iter()
            .map(|f| BinaryKind {
                high: true,
                compliance_a: Some(f * rram.params.i_compliance_a),
            })
            .collect(),
        _ => vec![BinaryKind {
            high: true,
            compliance_a: None,
        }],
    };
    kinds.push(BinaryKind {
        high: false,
        compliance_a: None,
    });
    kinds
}

fn binary_samples(device: &AnyDevice, config: &CharacterizeConfig) -> Vec<Sample> {
    binary_kinds(device)
        .iter()
        .enumerate()
        .flat_map(|(ki, kind)| {
            let label = kind.label(device);
            (0..config.trials)
                .into_par_iter()
                .map(|s| {
                    let path = [Protocol::Programming.stream_id(), 1, ki as u64, s as u64];
                    let mut rng = stream(config.seed, &path);
                    let mut state = device.fabricate(&mut rng);
                    kind.program(device, &mut state, &mut rng);
                    Sample {
                        kind: label.clone(),
                        target_s: f64::NAN,
                        g_s: device.conductance_at(&state, 0.0),
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn programming(
    device: &AnyDevice,
    label: &str,
    config: &CharacterizeConfig,
    out: &Path,
) -> Result<Outcome> {
    let analog = if device.is_analog() {
        analog_samples(device, config)
    } else {
        Vec::new()
    };
    let binary = if device.has_binary_mode() {
        binary_samples(device, config)
    } else {
        Vec::new()
    };
    let mut table = Table::new(&["mode", "target_s", "g_s", "r_ohm"]);
    for s in analog.iter().chain(&binary) {
        let target = if s.target_s.is_nan() {
            String::new()
        } else {
            s.target_s.to_string()
        };
        table.push_row(vec![
            s.kind.clone(),
            target,
            s.g_s.to_string(),
            (1.0 / s.g_s).to_string(),
        ])?;
    }
    let mut figs = Vec::new();
    if !analog.is_empty() {
        figs.push(analog_histogram(label, &analog, config.trials));
    }
    if !binary.is_empty() {
        figs.push(binary_histogram(label, &binary, config.trials));
    }
    save_panels(&figs, 2, &out.join("programming"))?;
    Ok(Outcome::Written(written(out, "programming", &table)?))
}

fn analog_histogram(label: &str, samples: &[Sample], per_target: usize) -> Figure {
    let values: Vec<f64> = samples.iter().map(|s| s.g_s * MICRO).collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut fig = Figure::new(
        format!("{label}: open-loop programming, {per_target} devices per target"),
        "conductance after programming (µS)",
        "devices per bin",
    );
    let mut targets: Vec<f64> = samples.iter().map(|s| s.target_s).collect();
    targets.dedup();
    for (c, &t) in targets.iter().enumerate() {
        let v: Vec<f64> = samples
            .iter()
            .filter(|s| s.target_s == t)
            .map(|s| s.g_s * MICRO)
            .collect();
        let bins = histogram(&v, lo, hi, HISTOGRAM_BINS);
        let width = bins.get(1).map_or(1.0, |b| b.0 - bins[0].0);
        fig.series.push(Series::new(
            format!("target {:.1} µS", t * MICRO),
            bins,
            Style::Bars { bin_width: width },
            c,
        ));
    }
    legend_headroom(&mut fig);
    fig
}

fn binary_histogram(label: &str, samples: &[Sample], per_kind: usize) -> Figure {
    let log_r: Vec<f64> = samples.iter().map(|s| (1.0 / s.g_s).log10()).collect();
    let lo = log_r.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = log_r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut fig = Figure::new(
        format!("{label}: binary programming, {per_kind} devices per state"),
        "resistance, log10(R / Ω)",
        "devices per bin",
    );
    let mut kinds: Vec<&str> = samples.iter().map(|s| s.kind.as_str()).collect();
    kinds.dedup();
    for (c, kind) in kinds.iter().enumerate() {
        let v: Vec<f64> = samples
            .iter()
            .filter(|s| s.kind == *kind)
            .map(|s| (1.0 / s.g_s).log10())
            .collect();
        let bins = histogram(&v, lo, hi, HISTOGRAM_BINS);
        let width = bins.get(1).map_or(1.0, |b| b.0 - bins[0].0);
        fig.series.push(Series::new(
            kind.to_string(),
            bins,
            Style::Bars { bin_width: width },
            c,
        ));
    }
    legend_headroom(&mut fig);
    fig
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_every_value_once() {
        let h = histogram(&[0.0, 0.5, 1.0, 1.0], 0.0, 1.0, 4);
        assert_eq!(h.iter().map(|b| b.1).sum::<f64>(), 4.0);
        assert_eq!(h[3].1, 2.0);
        assert_eq!(
            (h[0].0, h[3].0),
            (0.0, 1.0),
            "the end values sit at bin centres"
        );
        let flat = histogram(&[2.0, 2.0], 2.0, 2.0, 3);
        assert_eq!(flat.iter().map(|b| b.1).sum::<f64>(), 2.0);
    }
}
