//! Command-line interface: one module per subcommand.

mod crossbar;
mod devices;
mod experiment;
mod fit;

use clap::{Parser, Subcommand};

/// xbar: simulate in-memory computing crossbars built from emerging memories.
#[derive(Debug, Parser)]
#[command(name = "xbar", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the device presets, or show one preset's parameters with units and sources.
    Devices(devices::DevicesArgs),
    /// Run the standard characterisation protocols on a device preset (CSV + PNG + SVG).
    Characterize(devices::CharacterizeArgs),
    /// Fit a pulsed step family to measured conductance-versus-pulse data; write a preset.
    Fit(fit::FitArgs),
    /// Run an experiment file: sweep, repeats, results, summary and plots.
    Run(experiment::RunArgs),
    /// Plot mean and error bars from a results.csv.
    Plot(experiment::PlotArgs),
    /// Join the result directories of the shards of one run.
    Merge(experiment::MergeArgs),
    /// Crossbar circuit tools.
    #[command(subcommand)]
    Crossbar(crossbar::CrossbarCommand),
}

/// Run the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Devices(args) => devices::run_devices(args),
        Command::Characterize(args) => devices::run_characterize(args),
        Command::Fit(args) => fit::run_fit(args),
        Command::Run(args) => experiment::run_experiment(args),
        Command::Plot(args) => experiment::run_plot(args),
        Command::Merge(args) => experiment::run_merge(args),
        Command::Crossbar(cmd) => crossbar::run(cmd),
    }
}
