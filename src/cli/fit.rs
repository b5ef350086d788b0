//! `xbar fit`: fit a pulsed step family to a measured pulse response (a CSV of conductance
//! versus pulse number), write the device preset and plot the data against the fitted model.
//! The fit itself is `xbar::device::fit`.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use xbar::device::Polarity;
use xbar::device::fit::{self, Fit, FitOptions, Measurements};
use xbar::device::preset;
use xbar::device::pulsed::{FAMILIES, PulsedDevice, StepFamily};
use xbar::output::plot::{self, Figure, Series, Style};
use xbar::output::results::sha256_of_path;

/// Simulated devices drawn over the data in the figure.
const SIMULATED_DEVICES: u64 = 3;

/// Arguments of `xbar fit`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
The measurement file is a CSV with a header line and one row per reading:

  device,pulse,polarity,conductance_s
  d0,0,up,2.01e-5
  d0,1,up,2.05e-5
  ...

  device         name of the device (several devices give the device-to-device spread)
  pulse          pulse number, a whole number increasing within a device
  polarity       the pulse applied just before the reading: up (or +1) potentiates,
                 down (or -1) depresses; a device's first row is its initial reading
  conductance_s  conductance read after the pulse, siemens (or a column conductance_us
                 in microsiemens; not both)

Steps are the changes between readings of consecutive pulse numbers; each device needs at
least 10 up and 10 down steps away from its bounds. The preset is written in aihwkit's
weight units with the mean window of the devices mapped onto [-1, 1].")]
pub struct FitArgs {
    /// Measurement CSV: columns device,pulse,polarity,conductance_s (see below).
    data: PathBuf,
    /// Step family to fit.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(FAMILIES))]
    family: String,
    /// Name of the preset written.
    #[arg(long)]
    name: String,
    /// Preset file to write (must not exist).
    #[arg(long)]
    out: PathBuf,
    /// Figure of data versus fitted model: writes PATH's .png and .svg (must not exist).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Nodes of the step table (piecewise_step only).
    #[arg(long, default_value_t = 9)]
    nodes: usize,
    /// Amplitude of the nominal pulse written to the preset, volts (energy accounting only;
    /// not in the data).
    #[arg(long, default_value_t = 1.0)]
    pulse_amplitude_v: f64,
    /// Width of the nominal pulse written to the preset, seconds (not in the data).
    #[arg(long, default_value_t = 100e-9)]
    pulse_width_s: f64,
    /// Seed of the simulated devices drawn in the figure.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Run `xbar fit DATA --family F --name N --out FILE [--plot STEM]`.
pub fn run_fit(args: FitArgs) -> Result<()> {
    if args.name.trim().is_empty() {
        bail!("--name must not be empty");
    }
    refuse_existing(&args.out)?;
    if let Some(stem) = &args.plot {
        for ext in ["png", "svg"] {
            refuse_existing(&plot::figure_path(stem, ext))?;
        }
    }
    let text = std::fs::read_to_string(&args.data)
        .with_context(|| format!("cannot read the measurement file {}", args.data.display()))?;
    let origin = args.data.display().to_string();
    let data = fit::parse_csv(&text, &origin)?;
    let options = FitOptions {
        piecewise_nodes: args.nodes,
        pulse_amplitude_v: args.pulse_amplitude_v,
        pulse_width_s: args.pulse_width_s,
    };
    let started = std::time::Instant::now();
    let fitted = fit::fit(&data, &args.family, &options)?;
    let seconds = started.elapsed().as_secs_f64();
    let sha = sha256_of_path(&args.data)?;
    let file_name = args
        .data
        .file_name()
        .map_or(origin.clone(), |n| n.to_string_lossy().into_owned());
    let preset_text = preset_text(&args.name, &file_name, &sha, &fitted);
    // The preset must load as any user preset does before it is written.
    let out_origin = args.out.display().to_string();
    preset::parse(&preset_text, &out_origin)
        .and_then(|p| p.build(&toml::Table::new()))
        .context("the fitted preset does not load (a defect of xbar fit: please report it)")?;
    refuse_existing(&args.out)?;
    xbar::atomic::write_atomic(&args.out, preset_text.as_bytes())?;
    println!("{}", summary(&fitted, seconds));
    println!("wrote {}", args.out.display());
    if let Some(stem) = &args.plot {
        let figure = figure(&data, &fitted.device, &args.name, args.seed);
        plot::save(&figure, stem)?;
        println!(
            "wrote {} and {}",
            plot::figure_path(stem, "png").display(),
            plot::figure_path(stem, "svg").display()
        );
    }
    Ok(())
}

/// Results are never overwritten.
fn refuse_existing(path: &Path) -> Result<()> {
    if path.exists() {
        bail!(
            "{} already exists: xbar fit never overwrites a file; choose another path",
            path.display()
        );
    }
    Ok(())
}

/// A few lines on what was fitted.
fn summary(f: &Fit, seconds: f64) -> String {
    let r = &f.report;
    let p = &f.device.params;
    let step_s = p.dw_min * (p.g_max_s - p.g_min_s) / (p.w_max - p.w_min);
    format!(
        "fitted {} to {} devices, {} readings ({} steps) in {:.3} s\n\
         window {:.4e} .. {:.4e} S, mean step {:.4e} S (dw_min {:.4e}), up_down {:.3}\n\
         cycle-to-cycle {:.3} ({}), device-to-device step {:.3}, bounds {:.3} / {:.3}\n\
         noise of the readings {:.4e} S (write_noise_std {:.3})\n\
         residual RMS {:.4e} S ({:.3} dw_min)",
        f.device.family.name(),
        r.devices,
        r.readings,
        r.steps,
        seconds,
        p.g_min_s,
        p.g_max_s,
        step_s,
        p.dw_min,
        p.up_down,
        p.dw_min_std,
        if r.mult_noise {
            "multiplicative"
        } else {
            "additive"
        },
        p.dw_min_dtod,
        p.w_min_dtod,
        p.w_max_dtod,
        r.reading_noise_s,
        p.write_noise_std,
        r.residual_rms_s,
        r.residual_rms_rel
    )
}

/// Unit of every parameter a fitted preset holds.
fn unit(name: &str) -> &'static str {
    match name {
        "g_min_s" | "g_max_s" => "S",
        "w_min" | "w_max" | "dw_min" => "1 (weight units)",
        "w_min_dtod" => "1 (relative to w_min)",
        "w_max_dtod" => "1 (relative to w_max)",
        "dw_min_dtod" => "1 (relative to dw_min)",
        "dw_min_std" => "1 (relative to the step; to the step scale with mult_noise = false)",
        "up_down" | "up_down_dtod" | "write_noise_std" => "1 (units of dw_min)",
        "read_noise_rel" => "fraction of G",
        "drift_t0_s" | "pulse_width_s" => "s",
        "pulse_amplitude_v" => "V",
        "allow_increasing" | "mean_bound_reference" | "mult_noise" => "boolean",
        "dw_min_std_add" => "1 (weight units, times dw_min_std)",
        "dw_min_std_slope" => "1 (times dw_min_std)",
        "piecewise_up" | "piecewise_down" => "1 (units of the cell's step scale)",
        "diffusion" | "reset" | "reset_dtod" => "1 (weight units)",
        "diffusion_dtod" => "1 (relative to diffusion)",
        "lifetime" => "updates",
        "lifetime_dtod" => "1 (relative to lifetime)",
        _ => "1",
    }
}

/// Why a parameter was not taken from the data, or `None` if it was fitted.
fn not_fitted(name: &str, devices: usize) -> Option<&'static str> {
    let spread = [
        "w_min_dtod",
        "w_max_dtod",
        "dw_min_dtod",
        "up_down_dtod",
        "gamma_up_dtod",
        "gamma_down_dtod",
        "pow_gamma_dtod",
        "pow_up_down_dtod",
    ];
    match name {
        _ if devices < 2 && spread.contains(&name) => {
            Some("one device in the file gives no device-to-device spread (0)")
        }
        "read_noise_rel" => Some(
            "0: the noise of the readings is fitted as write_noise_std (redrawn at every write)",
        ),
        "drift_nu" | "drift_t0_s" => Some("no drift: the data have no time axis"),
        "p_stuck_lrs" | "p_stuck_hrs" => Some("0: stuck cells are not detected"),
        "pulse_amplitude_v" | "pulse_width_s" => {
            Some("the pulse given to xbar fit (energy and latency accounting only)")
        }
        "mean_bound_reference" => Some("false: the fit takes each cell's own bounds as reference"),
        "a" | "b" => {
            Some("convention a = 1, b = 0 (only A e^(gamma b) and gamma a are identifiable)")
        }
        "dw_min_std_add" | "dw_min_std_slope" => Some("0: multiplicative noise fitted"),
        "diffusion" | "diffusion_dtod" | "lifetime" | "lifetime_dtod" | "reset" | "reset_dtod" => {
            Some("0 (off): a pulse sweep shows no decay or diffusion between updates")
        }
        _ => None,
    }
}

/// The preset file of a fit: every parameter with value, unit and a source naming the data.
fn preset_text(name: &str, file: &str, sha: &str, f: &Fit) -> String {
    let r = &f.report;
    let family = f.device.family.name();
    let data = format!(
        "xbar fit from {file} (sha256 {sha}), {} devices, {} pulses",
        r.devices, r.pulses
    );
    let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
    let mut text = format!(
        "name = {}\nmodel = {}\ndescription = {}\n",
        quoted(name),
        quoted(family),
        quoted(&format!(
            "{family} fitted by xbar fit to {file}: {} devices, {} pulses, residual RMS {:.3e} S ({:.2} dw_min)",
            r.devices, r.pulses, r.residual_rms_s, r.residual_rms_rel
        ))
    );
    let shared = toml::Table::try_from(&f.device.params).unwrap_or_default();
    let own = family_table(&f.device.family);
    let names = SHARED_ORDER
        .iter()
        .copied()
        .chain(StepFamily::fields(family).iter().copied());
    for pname in names {
        let Some(value) = shared.get(pname).or_else(|| own.get(pname)) else {
            continue;
        };
        let source = match not_fitted(pname, r.devices) {
            Some(why) => format!("not determined by {data}: {why}; set it by hand if known"),
            None => format!("fitted by {data}"),
        };
        text.push_str(&format!(
            "\n[params.{pname}]\nvalue = {}\nunit = {}\nsource = {}\n",
            value,
            quoted(unit(pname)),
            quoted(&source)
        ));
    }
    text
}

/// The shared parameters in the order presets list them.
const SHARED_ORDER: [&str; 25] = [
    "g_min_s",
    "g_max_s",
    "w_min",
    "w_max",
    "w_min_dtod",
    "w_max_dtod",
    "dw_min",
    "dw_min_dtod",
    "dw_min_std",
    "up_down",
    "up_down_dtod",
    "write_noise_std",
    "read_noise_rel",
    "drift_nu",
    "drift_t0_s",
    "p_stuck_lrs",
    "p_stuck_hrs",
    "pulse_amplitude_v",
    "pulse_width_s",
    "diffusion",
    "diffusion_dtod",
    "lifetime",
    "lifetime_dtod",
    "reset",
    "reset_dtod",
];

fn family_table(family: &StepFamily) -> toml::Table {
    let table = match family {
        StepFamily::ConstantStep => Ok(toml::Table::new()),
        StepFamily::LinearStep(p) => toml::Table::try_from(p),
        StepFamily::SoftBounds(p) => toml::Table::try_from(p),
        StepFamily::ExpStep(p) => toml::Table::try_from(p),
        StepFamily::PowStep(p) => toml::Table::try_from(p),
        StepFamily::PiecewiseStep(p) => toml::Table::try_from(p),
    };
    table.unwrap_or_default()
}

/// Data versus the fitted model: every measured device, the fitted nominal device without
/// noise or spread, and a few simulated devices with the fitted spreads and noise, all driven
/// by the first device's pulse sequence (one pulse per reading).
fn figure(data: &Measurements, device: &PulsedDevice, name: &str, seed: u64) -> Figure {
    let mut fig = Figure::new(
        format!("{name}: {} fitted to the measurement", device.family.name()),
        "pulse number",
        "conductance (µS)",
    );
    for (k, d) in data.devices.iter().enumerate() {
        let points = d
            .readings
            .iter()
            .map(|r| (r.pulse as f64, r.g_s * 1e6))
            .collect();
        let label = if k == 0 {
            format!("measured ({} devices)", data.devices.len())
        } else {
            String::new()
        };
        fig.series.push(Series::new(label, points, Style::Trace, 8));
    }
    let first = &data.devices[0];
    let schedule: Vec<Polarity> = first.readings.iter().skip(1).map(|r| r.polarity).collect();
    let x: Vec<f64> = first.readings.iter().map(|r| r.pulse as f64).collect();
    let curve =
        |g: Vec<f64>| -> Vec<(f64, f64)> { x.iter().zip(g).map(|(&x, g)| (x, g * 1e6)).collect() };
    for k in 0..SIMULATED_DEVICES {
        let mut rng = xbar::rng::stream(seed, &[xbar::rng::FIT_SIMULATION_STREAM, k]);
        let g = fit::simulate_response(device, &schedule, &mut rng);
        let label = if k == 0 {
            "simulated devices (fitted model)"
        } else {
            ""
        };
        fig.series
            .push(Series::new(label, curve(g), Style::Trace, 0));
    }
    let mut nominal = device.clone();
    let p = &mut nominal.params;
    (
        p.w_min_dtod,
        p.w_max_dtod,
        p.dw_min_dtod,
        p.up_down_dtod,
        p.dw_min_std,
        p.write_noise_std,
    ) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    if let StepFamily::LinearStep(f) = &mut nominal.family {
        (f.gamma_up_dtod, f.gamma_down_dtod) = (0.0, 0.0);
    }
    if let StepFamily::PowStep(f) = &mut nominal.family {
        (f.pow_gamma_dtod, f.pow_up_down_dtod) = (0.0, 0.0);
    }
    let mut rng = xbar::rng::stream(seed, &[xbar::rng::FIT_SIMULATION_STREAM, u64::MAX]);
    let g = fit::simulate_response(&nominal, &schedule, &mut rng);
    fig.series.push(Series::new(
        "fitted mean device (no noise, no spread)",
        curve(g),
        Style::Line,
        1,
    ));
    fig
}
