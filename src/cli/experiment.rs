//! `xbar run`, `xbar plot` and `xbar merge`: experiments from TOML files, figures from
//! result tables, and the union of shards.

use anyhow::{Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use xbar::experiment::config::Overrides;
use xbar::experiment::kinds::Action;
use xbar::experiment::registry;
use xbar::experiment::run::{self, RESULTS_CSV, RunOptions};
use xbar::experiment::stats::ErrorBars;
use xbar::experiment::sweep::Shard;
use xbar::experiment::table::{PlotSpec, ResultsTable, figures};
use xbar::experiment::tree;

/// The experiment kinds (`experiment.kind`), one per line, for `xbar run --help`.
fn kinds_help() -> String {
    format!(
        "Experiment kinds (experiment.kind):\n{}",
        registry::help_lines(xbar::studies::KINDS)
    )
}

/// Arguments of `xbar run`.
#[derive(Debug, Args)]
#[command(after_help = kinds_help())]
pub struct RunArgs {
    /// Experiment file (TOML), e.g. experiments/quickstart.toml.
    file: PathBuf,
    /// Output directory [default: results/<experiment file stem>]. Results already there
    /// are kept: the run resumes them if they come from the same inputs, and refuses
    /// otherwise.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads [default: all cores; at most the number of cores]. Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Master seed, replacing experiment.seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override a configuration value: PATH=VALUE (repeatable), e.g. --set hardware.t_inference_s=3600.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    sets: Vec<String>,
    /// Run only shard I of N (points whose index is I modulo N), e.g. --shard 0/4; join with `xbar merge`.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Arguments of `xbar plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// A results.csv file, or a directory holding one.
    results: PathBuf,
    /// Column for the x axis (a sweep path, e.g. hardware.t_inference_s).
    #[arg(long)]
    x: String,
    /// Metric for the y axis (e.g. accuracy).
    #[arg(long)]
    y: String,
    /// Column whose values make one series each.
    #[arg(long)]
    series: Option<String>,
    /// Column whose values make one panel each.
    #[arg(long)]
    panel: Option<String>,
    /// Logarithmic x axis.
    #[arg(long)]
    logx: bool,
    /// Logarithmic y axis.
    #[arg(long)]
    logy: bool,
    /// Error bars: std (one standard deviation) or ci95 (95 % confidence interval of the mean).
    #[arg(long, default_value = "std")]
    error: String,
    /// x-axis label, with unit.
    #[arg(long)]
    xlabel: Option<String>,
    /// y-axis label, with unit.
    #[arg(long)]
    ylabel: Option<String>,
    /// Figure title.
    #[arg(long)]
    title: Option<String>,
    /// Output file stem: writes STEM.png and STEM.svg [default: <results dir>/plot-<y>-vs-<x>].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `xbar merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Result directories of the shards of one run.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Output directory for the merged results.
    #[arg(long)]
    out: PathBuf,
}

/// `xbar run`.
pub fn run_experiment(args: RunArgs) -> Result<()> {
    let mut overrides = Overrides {
        seed: args.seed,
        ..Overrides::default()
    };
    for s in &args.sets {
        overrides.sets.push(tree::parse_assignment(s)?);
    }
    let shard = args.shard.as_deref().map(Shard::parse).transpose()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| run::default_out(&args.file));
    let action = Action::Run(RunOptions {
        out: out.clone(),
        shard,
        progress: !args.quiet,
    });
    xbar::threads::with_threads(args.threads, || {
        registry::dispatch(xbar::studies::KINDS, &args.file, &overrides, &action)
    })?;
    println!("results in {}", out.display());
    Ok(())
}

/// `xbar plot`.
pub fn run_plot(args: PlotArgs) -> Result<()> {
    let csv = if args.results.is_dir() {
        args.results.join(RESULTS_CSV)
    } else {
        args.results.clone()
    };
    let table = ResultsTable::read(&csv)?;
    let error = match args.error.as_str() {
        "std" => ErrorBars::Std,
        "ci95" => ErrorBars::Ci95,
        other => bail!("--error {other}: use std or ci95"),
    };
    let spec = PlotSpec {
        series: args.series,
        panel: args.panel,
        log_x: args.logx,
        log_y: args.logy,
        error,
        title: args.title,
        x_label: args.xlabel,
        y_label: args.ylabel,
        ..PlotSpec::new(&args.x, &args.y)
    };
    let figs = figures(&table, &spec)?;
    let stem = args.out.unwrap_or_else(|| {
        let dir = csv.parent().unwrap_or(Path::new("."));
        dir.join(format!("plot-{}-vs-{}", args.y, args.x).replace(['/', '\\', ' '], "_"))
    });
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        xbar::output::results::prepare_output_dir(dir)?;
    }
    xbar::output::plot::save_panels(&figs, figs.len().min(3), &stem)?;
    println!(
        "{}",
        xbar::output::plot::figure_path(&stem, "png").display()
    );
    Ok(())
}

/// `xbar merge`.
pub fn run_merge(args: MergeArgs) -> Result<()> {
    run::merge(&args.dirs, &args.out)?;
    println!("merged results in {}", args.out.display());
    Ok(())
}
