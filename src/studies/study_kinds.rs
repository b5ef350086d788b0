//! Self-contained studies run by `xbar run`: experiment kinds whose driver carries its own
//! internal sweep and draws its own figures (the memristor Bayesian machine, the
//! device-sampled Bayesian network, the MRAM random-bit generator).
//!
//! File format: the `[experiment]` section (name, kind, seed) and one section named after
//! the kind holding the driver's configuration (every field has a default; unknown keys
//! are errors). The experiment seed is the driver's seed. Output: `report.json` (every
//! number of the study), the figures (PNG + SVG) and `run.json` (resolved configuration,
//! seed, version, timings), all written atomically once the study has finished.

use super::analog_sgd::{self, SgdStudy};
use super::metaplastic_pmnist::{self, PmnistSweep};
use crate::experiment::config::{ExperimentSection, Overrides, read_table, to_value, typed};
use crate::experiment::inputs;
use crate::experiment::kinds::Runner;
use crate::experiment::tree;
use crate::learning::ep::{self, Activation, EpConfig, EpNetwork};
use crate::output::plot::{Figure, Series, Style};
use crate::output::results::{self, OutputDir, RunRecord, Timer};
use crate::output::results::{REPORT_JSON, RUN_JSON};
use crate::studies;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use toml::Value;

/// Parse and validate a study file without running it.
pub fn check_file(path: &Path, overrides: &Overrides) -> Result<()> {
    let table = read_table(path)?;
    let dir = path.parent().unwrap_or(Path::new(""));
    run_table(table, overrides, dir, None)
        .with_context(|| format!("experiment file {}", path.display()))
}

/// Run a study from its parsed experiment file (whose relative paths are taken relative
/// to `file_dir`), writing into `out`; with `out = None`, only parse and check the
/// configuration.
pub fn run_table(
    mut table: toml::Table,
    overrides: &Overrides,
    file_dir: &Path,
    out: Option<&Path>,
) -> Result<()> {
    let mut section: ExperimentSection = typed(
        table
            .remove("experiment")
            .context("missing the [experiment] section")?,
        "experiment",
    )?;
    if let Some(seed) = overrides.seed {
        section.seed = seed;
    }
    let kind = section.kind.clone();
    let Runner::Study(driver) = super::kind(&kind)?.runner else {
        bail!("experiment.kind = '{kind}' is a sweep kind, not a study");
    };
    if let Some(other) = table.keys().find(|k| **k != kind) {
        bail!("[{other}]: a {kind} study has only the [experiment] and [{kind}] sections");
    }
    let mut body = table
        .remove(&kind)
        .unwrap_or_else(|| Value::Table(toml::Table::new()));
    inputs::resolve_relative_paths(&mut body, file_dir);
    driver(&section, body, overrides, out)
}

/// The `bayesian_machine` study.
pub fn bayesian_machine(
    section: &ExperimentSection,
    body: Value,
    overrides: &Overrides,
    out: Option<&Path>,
) -> Result<()> {
    use studies::bayesian_machine::{plot_machine, run_machine};
    study(section, body, overrides, out, run_machine, plot_machine)
}

/// The `bayesian_nn` study.
pub fn bayesian_nn(
    section: &ExperimentSection,
    body: Value,
    overrides: &Overrides,
    out: Option<&Path>,
) -> Result<()> {
    use studies::bayesian_nn::{plot_bnn, run_bnn};
    study(section, body, overrides, out, run_bnn, plot_bnn)
}

/// The `mram_rng` study.
pub fn mram_rng(
    section: &ExperimentSection,
    body: Value,
    overrides: &Overrides,
    out: Option<&Path>,
) -> Result<()> {
    use studies::mram_rng::{plot_mram_rng, run_mram_rng};
    study(section, body, overrides, out, run_mram_rng, plot_mram_rng)
}

/// The `analog_sgd` study.
pub fn analog_sgd(
    section: &ExperimentSection,
    body: Value,
    overrides: &Overrides,
    out: Option<&Path>,
) -> Result<()> {
    use analog_sgd::{plot_sgd_study, run_sgd_study};
    study(section, body, overrides, out, run_sgd_study, plot_sgd_study)
}

/// The `ep_mnist` study.
pub fn ep_mnist(
    section: &ExperimentSection,
    body: Value,
    overrides: &Overrides,
    out: Option<&Path>,
) -> Result<()> {
    study(section, body, overrides, out, run_ep_study, plot_ep_study)
}

/// The `metaplastic_pmnist` study.
pub fn metaplastic_pmnist(
    section: &ExperimentSection,
    body: Value,
    overrides: &Overrides,
    out: Option<&Path>,
) -> Result<()> {
    use metaplastic_pmnist::{run_pmnist_sweep, save_pmnist_sweep};
    study(
        section,
        body,
        overrides,
        out,
        run_pmnist_sweep,
        save_pmnist_sweep,
    )
}

/// Configurations of studies carry their driver's seed.
trait Seeded {
    fn set_seed(&mut self, seed: u64);
}

impl Seeded for studies::bayesian_machine::MachineConfig {
    fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }
}

impl Seeded for studies::bayesian_nn::BnnConfig {
    fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }
}

impl Seeded for studies::mram_rng::MramRngConfig {
    fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }
}

impl Seeded for SgdStudy {
    fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }
}

/// Equilibrium propagation on MNIST-10k with digital (floating-point) synapses.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EpStudy {
    /// Seed of the initial weights and of the training streams (the experiment seed).
    pub seed: u64,
    /// Hidden layer widths (784 inputs and 10 outputs are added).
    pub hidden: Vec<usize>,
    /// Neuron non-linearity.
    pub activation: Activation,
    /// Phases, nudging, learning rates, batch size, epochs.
    pub training: EpConfig,
}

impl Default for EpStudy {
    fn default() -> Self {
        Self {
            seed: 1,
            hidden: vec![512],
            activation: Activation::SteepSigmoid,
            training: EpConfig::mnist10k_784_512_10(),
        }
    }
}

impl Seeded for EpStudy {
    fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }
}

/// One epoch of an [`EpStudy`].
#[derive(Clone, Debug, Serialize)]
pub struct EpStudyEpoch {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Training accuracy during the epoch (free-phase predictions before each update).
    pub train_accuracy: f64,
    /// Test accuracy after the epoch.
    pub test_accuracy: f64,
    /// Wall time of the epoch's training, seconds.
    pub train_seconds: f64,
}

/// The epochs of an [`EpStudy`].
#[derive(Serialize)]
#[serde(transparent)]
pub struct EpStudyReport(pub Vec<EpStudyEpoch>);

fn run_ep_study(study: &EpStudy) -> Result<EpStudyReport> {
    let data = crate::data::mnist10k()?;
    let mut sizes = vec![data.train.features()];
    sizes.extend(&study.hidden);
    sizes.push(10);
    let mut net = EpNetwork::digital(&sizes, study.activation, study.seed)?;
    let config = EpConfig {
        seed: study.seed,
        ..study.training.clone()
    };
    let mut rule = config.rule();
    let bar = indicatif::ProgressBar::new(config.epochs as u64);
    let mut epochs = Vec::with_capacity(config.epochs);
    for epoch in 0..config.epochs {
        let start = std::time::Instant::now();
        let report = ep::train_epoch(&mut net, &data.train, &config, &mut rule, epoch)?;
        let train_seconds = start.elapsed().as_secs_f64();
        let test_accuracy = ep::evaluate(&mut net, &data.test, config.free_steps)?;
        epochs.push(EpStudyEpoch {
            epoch: epoch + 1,
            train_accuracy: report.train_accuracy,
            test_accuracy,
            train_seconds,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(EpStudyReport(epochs))
}

fn plot_ep_study(report: &EpStudyReport, dir: &Path) -> Result<()> {
    let epochs = &report.0;
    let mut fig = Figure::new("Equilibrium propagation on MNIST-10k", "epoch", "accuracy");
    let series =
        |f: fn(&EpStudyEpoch) -> f64| epochs.iter().map(|e| (e.epoch as f64, f(e))).collect();
    fig.series.push(Series::new(
        "test",
        series(|e| e.test_accuracy),
        Style::LinePoints,
        0,
    ));
    fig.series.push(Series::new(
        "train (during the epoch)",
        series(|e| e.train_accuracy),
        Style::LinePoints,
        1,
    ));
    crate::output::plot::save(&fig, &dir.join("ep_accuracy"))
}

impl Seeded for PmnistSweep {
    fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }
}

/// Complete the configuration, apply `--set`, run the driver, write report, figures and record.
fn study<C, R>(
    section: &ExperimentSection,
    body: Value,
    overrides: &Overrides,
    out: Option<&Path>,
    run: fn(&C) -> Result<R>,
    plot: fn(&R, &Path) -> Result<()>,
) -> Result<()>
where
    C: Serialize + DeserializeOwned + Seeded,
    R: Serialize,
{
    let kind = section.kind.as_str();
    let mut config: C = typed(body, &format!("[{kind}]"))?;
    let mut tree_value = to_value(&config)?;
    for (path, value) in &overrides.sets {
        let Some(inner) = path.strip_prefix(&format!("{kind}.")) else {
            bail!(
                "--set {path}: a {kind} study's settings are under '{kind}.' (e.g. {kind}.KEY=VALUE)"
            );
        };
        tree::set(&mut tree_value, inner, value.clone())
            .with_context(|| format!("--set {path}"))?;
        config = typed(tree_value.clone(), &format!("--set {path}"))?;
    }
    config.set_seed(section.seed);
    let Some(out) = out else { return Ok(()) };
    let config_json = serde_json::json!({ "experiment": section, kind: &config });
    let inputs = inputs::fingerprint_inputs([&to_value(&config)?])?;
    let dir = OutputDir::acquire(out)?;
    if results::holds_this_run(out, REPORT_JSON, &config_json, &inputs)? {
        println!(
            "{} already holds this study's finished results (same configuration, seed and \
             inputs): nothing to do",
            out.display()
        );
        return Ok(());
    }
    let mut timer = Timer::start();
    let report = timer
        .time("study", || run(&config))
        .with_context(|| format!("{kind} study '{}'", section.name));
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            dir.abandon(&[]);
            return Err(e);
        }
    };
    timer.time("figures", || plot(&report, out))?;
    results::write_json(&out.join(REPORT_JSON), &report)?;
    let mut record = RunRecord::new("run", config_json, section.seed);
    record.inputs = inputs;
    record.timings_s = timer.seconds();
    record.outputs = output_files(out)?;
    results::write_json(&out.join(RUN_JSON), &record)
}

/// The files of the output directory, sorted, plus `run.json`.
fn output_files(out: &Path) -> Result<Vec<String>> {
    let mut files: Vec<String> = std::fs::read_dir(out)
        .with_context(|| format!("listing {}", out.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    files.push(RUN_JSON.to_string());
    files.sort();
    files.dedup();
    Ok(files)
}
