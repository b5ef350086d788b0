//! `xbar devices` (list presets grouped by family, show one) and `xbar characterize` (run
//! the standard characterisation protocols on a preset and write CSV + PNG + SVG per
//! protocol).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use xbar::device::preset::{self, Preset};
use xbar::experiment::run::progress_bar;
use xbar::output::results::{
    OutputDir, RUN_JSON, RunRecord, Timer, holds_this_run, sha256_of_path, write_json,
};
use xbar::studies::characterize::estimated_bytes;
use xbar::studies::characterize::{CharacterizeConfig, Outcome, Protocol, run_protocol};

/// Arguments of `xbar devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    #[command(subcommand)]
    action: Option<DevicesAction>,
}

#[derive(Debug, Subcommand)]
enum DevicesAction {
    /// Print every parameter of a preset (built-in name or path to a .toml file) with unit and source.
    Show {
        /// Preset name (see `xbar devices`) or path to a preset file.
        name: String,
    },
}

/// Arguments of `xbar characterize`.
#[derive(Debug, Args)]
pub struct CharacterizeArgs {
    /// Preset name (see `xbar devices`) or path to a preset file.
    name: String,
    /// Output directory (created if needed; finished results of another run there are never
    /// overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Devices in the pulse-train and drift protocols, and devices the switching trials cycle through.
    #[arg(long, default_value_t = 32)]
    devices: usize,
    /// Trials per switching point, and samples per programming distribution.
    #[arg(long, default_value_t = 400)]
    trials: usize,
    /// Master seed of every random stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Override a preset parameter, e.g. `--set c2c_sigma=0.02` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    overrides: Vec<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Run `xbar devices [show NAME]`.
pub fn run_devices(args: DevicesArgs) -> Result<()> {
    match args.action {
        None => {
            print!("{}", list_by_family(&preset::list()?));
            Ok(())
        }
        Some(DevicesAction::Show { name }) => {
            let p = preset::read(&name)?;
            p.build(&toml::Table::new())?;
            print!("{}", describe(&p));
            Ok(())
        }
    }
}

/// The presets grouped by family (model), in the order of [`preset::models`]: a header line
/// per family with presets, then one indented line per preset with its description.
fn list_by_family(presets: &[Preset]) -> String {
    let width = presets.iter().map(|p| p.name.len()).max().unwrap_or(0);
    let mut text = String::new();
    for model in preset::models() {
        let members: Vec<&Preset> = presets.iter().filter(|p| p.model == model).collect();
        if members.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!(
            "{} (model = \"{model}\")\n",
            preset::family_label(model)
        ));
        for p in members {
            text.push_str(&format!("  {:<width$}  {}\n", p.name, p.description));
        }
    }
    text
}

/// A preset as text: header, then one line per parameter with value, unit and source.
fn describe(p: &Preset) -> String {
    let mut text = format!(
        "{} (model: {}, from {})\n{}\n\n",
        p.name, p.model, p.origin, p.description
    );
    let name_w = p.params.iter().map(|e| e.name.len()).max().unwrap_or(0);
    let value_w = p
        .params
        .iter()
        .map(|e| format_value(&e.value).len())
        .max()
        .unwrap_or(0);
    let unit_w = p.params.iter().map(|e| e.unit.len()).max().unwrap_or(0);
    text.push_str(&format!(
        "{:<name_w$}  {:>value_w$}  {:<unit_w$}  source\n",
        "parameter", "value", "unit"
    ));
    for e in &p.params {
        text.push_str(&format!(
            "{:<name_w$}  {:>value_w$}  {:<unit_w$}  {}\n",
            e.name,
            format_value(&e.value),
            e.unit,
            e.source
        ));
    }
    text
}

/// A parameter value in compact form: integers as is, floats plain for moderate magnitudes and
/// in scientific notation otherwise (`2.5e-5`).
fn format_value(v: &toml::Value) -> String {
    match v {
        toml::Value::Float(f) if *f != 0.0 && !(1e-2..1e5).contains(&f.abs()) => format!("{f:e}"),
        other => other.to_string(),
    }
}

/// Run `xbar characterize NAME --out DIR`.
pub fn run_characterize(args: CharacterizeArgs) -> Result<()> {
    let preset = preset::read(&args.name)?;
    let overrides = preset::parse_overrides(&args.overrides)?;
    let device = preset.build(&overrides)?;
    if args.devices == 0 || args.trials == 0 {
        anyhow::bail!("--devices and --trials must be at least 1");
    }
    let config = CharacterizeConfig {
        devices: args.devices,
        trials: args.trials,
        seed: args.seed,
    };
    xbar::memory::ensure_fits(
        estimated_bytes(&device, &config),
        &format!(
            "characterising {} devices with {} trials",
            config.devices, config.trials
        ),
        "use fewer --devices or --trials",
    )?;
    let inputs = match std::path::Path::new(&args.name) {
        p if p.is_file() => BTreeMap::from([(args.name.clone(), sha256_of_path(p)?)]),
        _ => BTreeMap::new(),
    };
    let config_json = serde_json::json!({
        "device": preset.name,
        "model": preset.model,
        "preset_origin": preset.origin,
        "params": preset.resolved_params(&overrides)?,
        "overrides": overrides,
        "devices": config.devices,
        "trials": config.trials,
        "seed": config.seed,
    });
    let _dir = OutputDir::acquire(&args.out)?;
    if holds_this_run(&args.out, RUN_JSON, &config_json, &inputs)? {
        println!(
            "{} already holds this characterisation (same preset, settings and seed): nothing to do",
            args.out.display()
        );
        return Ok(());
    }
    let mut timer = Timer::start();
    let mut outputs = Vec::new();
    let bar = progress_bar(!args.quiet, Protocol::ALL.len(), "protocols");
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    for protocol in Protocol::ALL {
        bar.set_message(protocol.name());
        let outcome = timer
            .time(protocol.name(), || {
                run_protocol(protocol, &device, &preset.name, &config, &args.out)
            })
            .with_context(|| format!("protocol {}", protocol.name()))?;
        bar.inc(1);
        match outcome {
            Outcome::Written(files) => {
                bar.suspend(|| println!("{}: wrote {}", protocol.name(), files.join(", ")));
                outputs.extend(files);
            }
            Outcome::Skipped(reason) => {
                bar.suspend(|| println!("{}: skipped ({reason})", protocol.name()));
            }
        }
    }
    bar.finish_and_clear();
    let mut record = RunRecord::new("characterize", config_json, config.seed);
    record.inputs = inputs;
    record.timings_s = timer.seconds();
    outputs.push(RUN_JSON.to_string());
    record.outputs = outputs;
    write_json(&args.out.join(RUN_JSON), &record)?;
    println!("results in {}", args.out.display());
    Ok(())
}
