//! The analog-SGD baseline study (`experiments/analog_sgd.toml`): an MLP trained with
//! pulsed outer-product updates on tiles of a named device preset (or in `f32` with
//! `device = "digital"`), one run per device, test accuracy per epoch, programming pulses
//! and energy. The rule, the network and the epoch loop are [`crate::learning::sgd`]; this
//! module turns preset names into devices, runs them and draws the figure.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

use crate::crossbar::TileConfig;
use crate::crossbar::update::{PairUpdate, PulsedUpdateConfig};
use crate::data::{Dataset, Split};
use crate::device::{Device, preset};
use crate::learning::sgd::{
    EpochSchedule, HiddenActivation, Mlp, Sgd, accuracy, initial_layers, train_epoch,
};
use crate::output::plot::{Figure, Series, Style};
use crate::synapses::PlasticSynapses;
use crate::synapses::{CrossbarSynapses, program_layers};

/// Name of the floating-point reference in [`SgdConfig::device`].
pub const DIGITAL: &str = "digital";
/// Classes of MNIST.
const CLASSES: usize = 10;

/// Settings of an analog-SGD run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SgdConfig {
    /// Device preset holding the weights (`device_models/*.toml` name or path), or
    /// `"digital"` for the floating-point reference.
    pub device: String,
    /// Preset parameter overrides by name (e.g. `levels = 1000`).
    pub device_overrides: toml::Table,
    /// Hidden-layer sizes (input 784 and output 10 are implied).
    pub hidden: Vec<usize>,
    /// Hidden nonlinearity.
    pub activation: HiddenActivation,
    /// SGD learning rate η.
    pub learning_rate: f32,
    /// Images per mini-batch (one outer product per image per update).
    pub batch_size: usize,
    /// Passes over the training set.
    pub epochs: usize,
    /// Use only the first this many training images (all when absent).
    pub train_samples: Option<usize>,
    /// Use only the first this many test images (all when absent).
    pub test_samples: Option<usize>,
    /// Weight mapped to a full conductance window, per layer's tile.
    pub w_max: f64,
    /// Tile periphery and faults (`TileConfig::ideal()` when absent).
    pub tile: Option<TileConfig>,
    /// Pulse-train settings.
    pub pulses: PulsedUpdateConfig,
    /// Seed of the initialisation, shuffles, devices and pulses.
    pub seed: u64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            device: DIGITAL.to_string(),
            device_overrides: toml::Table::new(),
            hidden: vec![128],
            activation: HiddenActivation::Sigmoid,
            learning_rate: 0.5,
            batch_size: 10,
            epochs: 3,
            train_samples: None,
            test_samples: None,
            w_max: 1.0,
            tile: None,
            pulses: PulsedUpdateConfig::default(),
            seed: 1,
        }
    }
}

impl SgdConfig {
    /// Check every field.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.hidden.iter().all(|&h| h > 0),
            "hidden layer sizes must be positive (got {:?})",
            self.hidden
        );
        ensure!(
            self.learning_rate.is_finite() && self.learning_rate > 0.0,
            "learning_rate must be a positive number (got {})",
            self.learning_rate
        );
        ensure!(self.batch_size > 0, "batch_size must be at least 1");
        ensure!(self.epochs > 0, "epochs must be at least 1");
        ensure!(
            self.w_max.is_finite() && self.w_max > 0.0,
            "w_max must be a positive number (got {})",
            self.w_max
        );
        self.pulses.validate().context("pulses")
    }
}

/// Accuracy and cost after one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdEpoch {
    /// Epoch index (from 0).
    pub epoch: usize,
    /// Fraction of training images classified correctly during the epoch.
    pub train_accuracy: f64,
    /// Test accuracy after the epoch.
    pub test_accuracy: f64,
    /// Programming pulses applied so far (0 for the digital reference).
    pub programming_pulses: u64,
    /// Programming energy so far, joules.
    pub programming_energy_j: f64,
    /// Wall-clock time of the epoch's training, seconds.
    pub train_time_s: f64,
}

/// Result of an analog-SGD run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdReport {
    /// Device preset (or `"digital"`).
    pub device: String,
    /// Layer sizes, input first.
    pub sizes: Vec<usize>,
    /// One entry per epoch.
    pub epochs: Vec<SgdEpoch>,
}

impl SgdReport {
    /// Test accuracy after the last epoch.
    pub fn final_test_accuracy(&self) -> f64 {
        self.epochs.last().map_or(0.0, |e| e.test_accuracy)
    }
}

/// Layer sizes of a configuration: 784, the hidden sizes, 10.
fn layer_sizes(config: &SgdConfig, inputs: usize) -> Vec<usize> {
    let mut sizes = vec![inputs];
    sizes.extend(&config.hidden);
    sizes.push(CLASSES);
    sizes
}

/// Train and test an MLP with (analog or digital) SGD on `data`; the driver of the
/// analog-SGD baseline experiments.
pub fn run(config: &SgdConfig, data: &Split) -> Result<SgdReport> {
    config.validate().context("analog SGD settings")?;
    let train = config
        .train_samples
        .map_or_else(|| data.train.clone(), |n| data.train.take(n));
    let test = config
        .test_samples
        .map_or_else(|| data.test.clone(), |n| data.test.take(n));
    ensure!(
        !train.is_empty() && !test.is_empty(),
        "empty training or test set"
    );
    let sizes = layer_sizes(config, train.features());
    let digital = initial_layers(&sizes, config.seed)?;
    let epochs = if config.device == DIGITAL {
        let mut mlp = Mlp::new(digital, config.activation)?;
        train_epochs(&mut mlp, config, &train, &test, |_| (0, 0.0))?
    } else {
        let device = preset::load(&config.device, &config.device_overrides)
            .with_context(|| format!("device preset {:?}", config.device))?;
        let tile = config.tile.clone().unwrap_or_else(TileConfig::ideal);
        let w_max = vec![config.w_max; digital.len()];
        let layers = program_layers(&device, &digital, &w_max, &tile, config.pulses, config.seed)?;
        let mut mlp = Mlp::new(layers, config.activation)?;
        train_epochs(&mut mlp, config, &train, &test, programming_cost)?
    };
    Ok(SgdReport {
        device: config.device.clone(),
        sizes,
        epochs,
    })
}

/// Cumulative programming pulses and energy of crossbar layers (pulsed updates and the
/// initial programming).
fn programming_cost<D: Device>(mlp: &Mlp<CrossbarSynapses<D>>) -> (u64, f64) {
    mlp.layers().iter().fold((0, 0.0), |(n, e), l| {
        let total = l.tile().ledger().total;
        (n + total.programming_pulses, e + total.programming_j)
    })
}

fn train_epochs<L: PlasticSynapses>(
    mlp: &mut Mlp<L>,
    config: &SgdConfig,
    train: &Dataset,
    test: &Dataset,
    cost: impl Fn(&Mlp<L>) -> (u64, f64),
) -> Result<Vec<SgdEpoch>> {
    let mut rule = Sgd {
        learning_rate: config.learning_rate,
    };
    let mut reports = Vec::with_capacity(config.epochs);
    for epoch in 0..config.epochs {
        let start = Instant::now();
        let schedule = EpochSchedule {
            batch_size: config.batch_size,
            seed: config.seed,
            epoch,
        };
        let train_accuracy = train_epoch(mlp, &mut rule, config.learning_rate, train, schedule)?;
        let train_time_s = start.elapsed().as_secs_f64();
        let (programming_pulses, programming_energy_j) = cost(mlp);
        reports.push(SgdEpoch {
            epoch,
            train_accuracy,
            test_accuracy: accuracy(mlp, test)?,
            programming_pulses,
            programming_energy_j,
            train_time_s,
        });
    }
    Ok(reports)
}

/// Analog SGD runs that differ only in their device (and pair-update policy).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SgdStudy {
    /// Seed of every run (the experiment seed).
    pub seed: u64,
    /// One run per entry: a device preset (or "digital") and the pair-update policy.
    pub runs: Vec<SgdRun>,
    /// Everything else, shared by the runs (its `device`, `pulses.pair_update` and `seed`
    /// are replaced per run).
    pub training: SgdConfig,
}

/// The device-specific part of one analog-SGD run.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgdRun {
    /// Device preset name or path, or "digital" for floating-point weights.
    pub device: String,
    /// Which device of a differential pair a pulse goes to.
    pub pair_update: PairUpdate,
}

impl Default for SgdStudy {
    fn default() -> Self {
        let run = |device: &str, pair_update| SgdRun {
            device: device.into(),
            pair_update,
        };
        Self {
            seed: 1,
            runs: vec![
                run("digital", PairUpdate::Canonical),
                run("ideal", PairUpdate::Canonical),
                run("rram_hfo2", PairUpdate::Canonical),
                run("pcm_gst", PairUpdate::SetOnly),
            ],
            training: SgdConfig::default(),
        }
    }
}

/// The reports of an [`SgdStudy`], one per run.
#[derive(Serialize)]
#[serde(transparent)]
pub struct SgdStudyReport(pub Vec<SgdReport>);

/// Run every device of the study.
pub fn run_sgd_study(study: &SgdStudy) -> Result<SgdStudyReport> {
    let data = crate::data::mnist10k()?;
    study
        .runs
        .iter()
        .map(|r| {
            let mut config = study.training.clone();
            config.device = r.device.clone();
            config.pulses.pair_update = r.pair_update;
            config.seed = study.seed;
            run(&config, &data).with_context(|| format!("run on {}", r.device))
        })
        .collect::<Result<_>>()
        .map(SgdStudyReport)
}

/// Test accuracy per epoch, one series per run.
pub fn plot_sgd_study(report: &SgdStudyReport, dir: &Path) -> Result<()> {
    let mut fig = Figure::new(
        "Analog SGD with pulsed updates, MNIST-10k",
        "epochs trained",
        "test accuracy",
    );
    for (k, run) in report.0.iter().enumerate() {
        let points = run
            .epochs
            .iter()
            .map(|e| ((e.epoch + 1) as f64, e.test_accuracy))
            .collect();
        fig.series.push(Series::new(
            run.device.clone(),
            points,
            Style::LinePoints,
            k,
        ));
    }
    crate::output::plot::save(&fig, &dir.join("sgd_accuracy"))
}
