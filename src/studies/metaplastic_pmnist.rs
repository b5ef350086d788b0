//! The permuted-MNIST continual-learning experiment of Laborieux et al. 2021 (Fig. 2),
//! scaled to MNIST-10k: a metaplastic BNN learns `tasks` pixel permutations one after
//! the other; after each task it is tested on every task, and the 2T2R writes (sign
//! flips of the hidden weights) and their energy are counted.
//!
//! As in the authors' code (`--scenario task`): a fresh Adam memory for every task; the
//! batch-norm γ and β are saved at the end of each task and restored to test that task
//! later (tasks not yet finished are tested with the current ones); batch norm uses the
//! statistics of the test batch. The paper trains 784-4096-4096-10 for 40 epochs of
//! 60,000 images (24,000 updates) per task; the defaults here are 784-512-512-10 and
//! 4,000 updates of 100 images (50 epochs of MNIST-10k's 8,000) per task.

use crate::crossbar::{ProgrammingMethod, TileConfig, WeightEncoding};
use crate::data::tasks::{PermutedTask, permuted_tasks};
use crate::data::{Dataset, Split, mnist10k};
use crate::device::preset;
use crate::learning::metaplastic::{BatchNormParams, MetaRule, MetaplasticAdam, MetaplasticBnn};
use crate::nn::optim::AdamHyper;
use crate::output::plot::{self, Figure, Series, Style};
use crate::output::results::Table;
use crate::rng;
use crate::synapses::WriteTally;
use anyhow::{Context, Result, bail, ensure};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Settings of one permuted-MNIST run (one value of m).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PmnistConfig {
    /// Hidden layer sizes (the paper: [4096, 4096]; default [512, 512]).
    pub hidden: Vec<usize>,
    /// Metaplasticity strength m (0 = plain BNN; the paper uses up to 1.35 for pMNIST).
    pub meta: f32,
    /// Adam step size η.
    pub learning_rate: f32,
    /// Adam first-moment decay β1.
    pub beta1: f32,
    /// Adam second-moment decay β2.
    pub beta2: f32,
    /// Adam denominator floor ε.
    pub epsilon: f32,
    /// L2 weight decay λ (the paper: 1e-7).
    pub weight_decay: f32,
    /// Mini-batch updates per task (all full batches; epochs follow one another).
    pub updates_per_task: usize,
    /// Images per mini-batch (the paper: 100).
    pub batch_size: usize,
    /// Number of sequential tasks.
    pub tasks: usize,
    /// Whether task 0 is plain (unpermuted) MNIST.
    pub identity_first_task: bool,
    /// Hidden weights start uniform in `±init_width/2` (the paper: 0.1).
    pub init_width: f32,
    /// Test images per batch-norm batch at evaluation (the paper: 1000).
    pub eval_batch_size: usize,
    /// Use only the first `train_images` training images (0 = all 8,000).
    pub train_images: usize,
    /// Use only the first `test_images` test images (0 = all 2,000).
    pub test_images: usize,
    /// Device preset of the 2T2R cells (name or TOML file), e.g. `rram_hfo2`, `stt_mram`.
    pub device: String,
    /// Preset parameter overrides by name.
    pub device_overrides: toml::Table,
    /// The 2T2R tiles holding the binary weights (`mapping.encoding` must be `"binary"`):
    /// size, sense amplifiers (offset, read noise), programming method, faults, energy.
    /// Default: 256 x 256 tiles, open-loop programming, the default periphery.
    pub tile: TileConfig,
}

/// The default 2T2R tile of the experiment: binary encoding, open-loop programming (one
/// SET and one RESET per written pair, as in Hirtzlin et al. 2020), the default periphery.
fn binary_tile() -> TileConfig {
    let mut tile = TileConfig::default();
    tile.mapping.encoding = WeightEncoding::Binary;
    tile.programming.method = ProgrammingMethod::OpenLoop;
    tile
}

impl Default for PmnistConfig {
    fn default() -> Self {
        let adam = AdamHyper::paper();
        PmnistConfig {
            hidden: vec![512, 512],
            meta: 1.35,
            learning_rate: adam.learning_rate,
            beta1: adam.beta1,
            beta2: adam.beta2,
            epsilon: adam.epsilon,
            weight_decay: adam.weight_decay,
            updates_per_task: 4000,
            batch_size: 100,
            tasks: 6,
            identity_first_task: true,
            init_width: 0.1,
            eval_batch_size: 1000,
            train_images: 0,
            test_images: 0,
            device: "rram_hfo2".into(),
            device_overrides: toml::Table::new(),
            tile: binary_tile(),
        }
    }
}

impl PmnistConfig {
    /// The Adam hyper-parameters.
    pub fn adam(&self) -> AdamHyper {
        AdamHyper {
            learning_rate: self.learning_rate,
            beta1: self.beta1,
            beta2: self.beta2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
        }
    }

    /// Check every field, naming the offending one.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            !self.hidden.is_empty() && self.hidden.iter().all(|&h| h > 0),
            "metaplastic config: hidden = {:?} must list at least one layer size >= 1",
            self.hidden
        );
        ensure!(
            self.meta.is_finite() && self.meta >= 0.0,
            "metaplastic config: meta = {} must be finite and >= 0",
            self.meta
        );
        self.adam().validate().context("metaplastic config")?;
        ensure!(
            self.updates_per_task > 0,
            "metaplastic config: updates_per_task must be >= 1"
        );
        ensure!(
            self.batch_size >= 2,
            "metaplastic config: batch_size = {}: batch norm needs at least 2 images",
            self.batch_size
        );
        ensure!(self.tasks > 0, "metaplastic config: tasks must be >= 1");
        ensure!(
            self.init_width.is_finite() && self.init_width > 0.0,
            "metaplastic config: init_width = {} must be finite and > 0",
            self.init_width
        );
        ensure!(
            self.eval_batch_size >= 2,
            "metaplastic config: eval_batch_size = {}: batch norm needs at least 2 images",
            self.eval_batch_size
        );
        ensure!(
            self.tile.mapping.encoding == WeightEncoding::Binary,
            "metaplastic config: tile.mapping.encoding must be \"binary\" (the binary weights \
             live on 2T2R pairs read by sense amplifiers)"
        );
        self.tile.validate().context("metaplastic config: tile")?;
        Ok(())
    }
}

/// Writes to the 2T2R arrays while training one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskWrites {
    /// Task index.
    pub task: usize,
    /// Sign flips of the hidden weights (= synapse writes) per layer.
    pub flips_per_layer: Vec<u64>,
    /// Pulses, energy and time of those writes.
    pub writes: WriteTally,
    /// Mean synapse writes per synapse during the task.
    pub writes_per_synapse: f64,
}

/// Result of one permuted-MNIST run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PmnistReport {
    /// The run's settings.
    pub config: PmnistConfig,
    /// Seed of the run.
    pub seed: u64,
    /// Layer sizes, input first.
    pub sizes: Vec<usize>,
    /// Test accuracy `accuracy[t][k]` on task `k` after training task `t` (tasks x tasks).
    pub accuracy: Vec<Vec<f64>>,
    /// Mean test accuracy over the learned tasks `0..=t` after training task `t`.
    pub mean_accuracy_learned: Vec<f64>,
    /// Mean |W_h| per layer after each task (consolidation sets in near 1/m).
    pub mean_abs_hidden: Vec<Vec<f64>>,
    /// Writes during each task.
    pub task_writes: Vec<TaskWrites>,
    /// Cost of programming the arrays once at the start.
    pub initial_programming: WriteTally,
    /// Per layer, the fraction of the bits sensed during the run (training and test
    /// reads) that differ from the sign the pair was programmed to.
    pub sense_bit_error_rate: Vec<f64>,
    /// Per layer, the energy of the sense-amplifier reads of the whole run, joules.
    pub sense_energy_j: Vec<f64>,
    /// Training wall-clock time (evaluation excluded), seconds.
    pub train_seconds: f64,
}

/// Run permuted MNIST on the embedded MNIST-10k set.
pub fn run_pmnist(config: &PmnistConfig, seed: u64) -> Result<PmnistReport> {
    let data = mnist10k().context("loading MNIST-10k for permuted MNIST")?;
    run_pmnist_on(config, &data, seed)
}

/// Run permuted MNIST on `data` (images of any size; the labels define the classes).
pub fn run_pmnist_on(config: &PmnistConfig, data: &Split, seed: u64) -> Result<PmnistReport> {
    config.validate()?;
    let device = preset::load(&config.device, &config.device_overrides)
        .with_context(|| format!("metaplastic config: device = {:?}", config.device))?;
    let limit = |d: &Dataset, n: usize| if n == 0 { d.clone() } else { d.take(n) };
    let train = limit(&data.train, config.train_images);
    let test = limit(&data.test, config.test_images);
    ensure!(
        train.len() >= config.batch_size,
        "metaplastic config: batch_size = {} exceeds the {} training images",
        config.batch_size,
        train.len()
    );
    ensure!(
        test.len() >= 2,
        "permuted MNIST needs at least 2 test images"
    );
    let pixels = train.features();
    let classes = train.classes().max(test.classes());
    let tasks = permuted_tasks(pixels, config.tasks, seed, config.identity_first_task)?;
    let sizes: Vec<usize> = std::iter::once(pixels)
        .chain(config.hidden.iter().copied())
        .chain(std::iter::once(classes))
        .collect();
    let (mut net, hidden) =
        MetaplasticBnn::new(&sizes, config.init_width, device, &config.tile, seed)
            .context("metaplastic config: tile")?;
    let meta = MetaRule::Metaplastic { m: config.meta };
    let mut rule = MetaplasticAdam::new(hidden, config.adam(), meta)?;
    let synapses: usize = sizes.windows(2).map(|s| s[0] * s[1]).sum();
    let initial_programming = net.program_all()?;
    let mut snapshots: Vec<BatchNormParams> = Vec::new();
    let mut report = PmnistReport {
        config: config.clone(),
        seed,
        sizes,
        accuracy: Vec::new(),
        mean_accuracy_learned: Vec::new(),
        mean_abs_hidden: Vec::new(),
        task_writes: Vec::new(),
        initial_programming,
        sense_bit_error_rate: Vec::new(),
        sense_energy_j: Vec::new(),
        train_seconds: 0.0,
    };
    for task in &tasks {
        let start = Instant::now();
        let writes = train_task(&mut net, &mut rule, &train, task, config, seed)?;
        report.train_seconds += start.elapsed().as_secs_f64();
        report.task_writes.push(TaskWrites {
            writes_per_synapse: writes.1.synapse_writes as f64 / synapses as f64,
            task: task.index,
            flips_per_layer: writes.0,
            writes: writes.1,
        });
        snapshots.push(net.batch_norm());
        let row = evaluate_all(&mut net, &test, &tasks, &snapshots, config.eval_batch_size)?;
        let learned = &row[..=task.index];
        report
            .mean_accuracy_learned
            .push(learned.iter().sum::<f64>() / learned.len() as f64);
        report.accuracy.push(row);
        report.mean_abs_hidden.push(
            (0..net.depth())
                .map(|l| {
                    let w = rule.hidden_weights(l).unwrap_or_default();
                    w.iter().map(|v| f64::from(v.abs())).sum::<f64>() / w.len().max(1) as f64
                })
                .collect(),
        );
    }
    for synapses in (0..net.depth()).filter_map(|l| net.synapses(l)) {
        report.sense_bit_error_rate.push(synapses.bit_error_rate());
        report.sense_energy_j.push(synapses.energy().read_j());
    }
    Ok(report)
}

/// Train one task for `updates_per_task` steps with fresh Adam memories; returns the
/// flips per layer and the write cost.
fn train_task(
    net: &mut MetaplasticBnn,
    rule: &mut MetaplasticAdam,
    train: &Dataset,
    task: &PermutedTask,
    config: &PmnistConfig,
    seed: u64,
) -> Result<(Vec<u64>, WriteTally)> {
    rule.reset_moments();
    let mut batch_norm_adam = net.batch_norm_adam(config.adam());
    let batches_per_epoch = train.len() / config.batch_size;
    let mut flips = vec![0u64; net.depth()];
    let mut tally = WriteTally::default();
    let mut order = Vec::new();
    for step in 0..config.updates_per_task {
        let (epoch, b) = (step / batches_per_epoch, step % batches_per_epoch);
        if b == 0 {
            order = shuffle(train.len(), seed, task.index, epoch);
        }
        let indices = &order[b * config.batch_size..(b + 1) * config.batch_size];
        let (x, labels) = gather_permuted(train, indices, task);
        let r = net.train_step(rule, &mut batch_norm_adam, &x, &labels)?;
        flips
            .iter_mut()
            .zip(&r.flips_per_layer)
            .for_each(|(f, n)| *f += n);
        tally += r.writes;
    }
    Ok((flips, tally))
}

/// Test accuracy on every task, each earlier task with its own saved batch norm.
fn evaluate_all(
    net: &mut MetaplasticBnn,
    test: &Dataset,
    tasks: &[PermutedTask],
    snapshots: &[BatchNormParams],
    eval_batch: usize,
) -> Result<Vec<f64>> {
    let current = net.batch_norm();
    let mut row = Vec::with_capacity(tasks.len());
    for task in tasks {
        net.set_batch_norm(snapshots.get(task.index).unwrap_or(&current))?;
        row.push(accuracy(net, test, task, eval_batch)?);
    }
    net.set_batch_norm(&current)?;
    Ok(row)
}

/// Test accuracy of `net` on `task`, batch-normed over batches of `eval_batch` images (a
/// last batch of one image joins the previous batch).
pub fn accuracy(
    net: &mut MetaplasticBnn,
    test: &Dataset,
    task: &PermutedTask,
    eval_batch: usize,
) -> Result<f64> {
    let n = test.len();
    let indices: Vec<usize> = (0..n).collect();
    let mut bounds: Vec<usize> = (0..n).step_by(eval_batch).collect();
    if n - bounds[bounds.len() - 1] < 2 && bounds.len() > 1 {
        bounds.pop();
    }
    bounds.push(n);
    let mut correct = 0usize;
    for w in bounds.windows(2) {
        let (x, labels) = gather_permuted(test, &indices[w[0]..w[1]], task);
        let logits = net.logits(&x, labels.len())?;
        let classes = logits.len() / labels.len();
        for (row, &l) in logits.chunks_exact(classes).zip(&labels) {
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (k, &z)| if z > row[b] { k } else { b });
            correct += usize::from(best == usize::from(l));
        }
    }
    Ok(correct as f64 / n as f64)
}

/// The shuffled image order of epoch `epoch` of task `task` (Fisher–Yates).
fn shuffle(n: usize, seed: u64, task: usize, epoch: usize) -> Vec<usize> {
    let mut r = rng::stream(
        seed,
        &[rng::PMNIST_SHUFFLE_STREAM, task as u64, epoch as u64],
    );
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, r.random_range(0..=i));
    }
    order
}

/// The permuted images and labels of `indices`.
fn gather_permuted(data: &Dataset, indices: &[usize], task: &PermutedTask) -> (Vec<f32>, Vec<u8>) {
    let d = data.features();
    let mut x = vec![0.0; indices.len() * d];
    for (out, &i) in x.chunks_exact_mut(d).zip(indices) {
        task.permute_into(data.image(i), out);
    }
    (x, indices.iter().map(|&i| data.labels[i]).collect())
}

/// Forgetting curves, one panel per run: accuracy on each task (one series per task, from
/// the moment it is learned) versus the number of tasks trained.
pub fn forgetting_panels(reports: &[PmnistReport]) -> Vec<Figure> {
    reports
        .iter()
        .map(|r| {
            let mut fig = Figure::new(
                format!("m = {}", r.config.meta),
                "tasks trained",
                "test accuracy (%)",
            );
            fig.y_range = Some((0.0, 100.0));
            for k in 0..r.accuracy.len() {
                let points = (k..r.accuracy.len())
                    .map(|t| ((t + 1) as f64, 100.0 * r.accuracy[t][k]))
                    .collect();
                fig.series.push(Series::new(
                    format!("task {}", k + 1),
                    points,
                    Style::LinePoints,
                    k,
                ));
            }
            fig
        })
        .collect()
}

/// Mean test accuracy over the learned tasks versus the number of tasks, one series per
/// run.
pub fn mean_accuracy_figure(reports: &[PmnistReport]) -> Figure {
    let mut fig = Figure::new(
        "Permuted MNIST: mean accuracy over learned tasks",
        "tasks trained",
        "mean test accuracy (%)",
    );
    fig.y_range = Some((0.0, 100.0));
    for (i, r) in reports.iter().enumerate() {
        let points = r
            .mean_accuracy_learned
            .iter()
            .enumerate()
            .map(|(t, a)| ((t + 1) as f64, 100.0 * a))
            .collect();
        let label = format!("m = {}", r.config.meta);
        fig.series
            .push(Series::new(label, points, Style::LinePoints, i));
    }
    fig
}

/// One row per (run, task trained): m, task, accuracy on every task, mean over learned
/// tasks, synapse writes and their energy.
pub fn pmnist_table(reports: &[PmnistReport]) -> Result<Table> {
    let tasks = reports.iter().map(|r| r.accuracy.len()).max().unwrap_or(0);
    let mut header: Vec<String> = vec!["meta".into(), "task_trained".into()];
    header.extend((0..tasks).map(|k| format!("accuracy_task_{k}")));
    header.extend(
        ["mean_accuracy_learned", "synapse_writes", "write_energy_j"]
            .iter()
            .map(|s| s.to_string()),
    );
    let mut table = Table::new(&header);
    for r in reports {
        for (t, row) in r.accuracy.iter().enumerate() {
            let mut values = vec![f64::from(r.config.meta), t as f64];
            values.extend((0..tasks).map(|k| row.get(k).copied().unwrap_or(f64::NAN)));
            let w = &r.task_writes[t].writes;
            values.extend([
                r.mean_accuracy_learned[t],
                w.synapse_writes as f64,
                w.energy_j,
            ]);
            table.push_numbers(&values)?;
        }
    }
    Ok(table)
}

/// Write `pmnist_forgetting.{png,svg}` (one panel per run) and
/// `pmnist_mean_accuracy.{png,svg}` into `dir` (the numbers go to `results.csv`, see
/// [`pmnist_table`]).
pub fn save_pmnist_figures(reports: &[PmnistReport], dir: &Path) -> Result<()> {
    let panels = forgetting_panels(reports);
    let columns = panels.len().clamp(1, 3);
    plot::save_panels(&panels, columns, &dir.join("pmnist_forgetting"))?;
    plot::save(
        &mean_accuracy_figure(reports),
        &dir.join("pmnist_mean_accuracy"),
    )
}

/// Permuted-MNIST runs for several metaplasticity strengths m, everything else equal.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PmnistSweep {
    /// Seed of every run (the experiment seed).
    pub seed: u64,
    /// The metaplasticity strengths m to compare (each replaces `network.meta`).
    pub meta_values: Vec<f32>,
    /// Network, training, tasks and devices of every run.
    pub network: PmnistConfig,
}

impl Default for PmnistSweep {
    fn default() -> Self {
        Self {
            seed: 1,
            meta_values: vec![0.0, 0.5, 1.0, 1.35, 2.0],
            network: PmnistConfig::default(),
        }
    }
}

/// The reports of a [`PmnistSweep`], one per m.
#[derive(Serialize)]
#[serde(transparent)]
pub struct PmnistSweepReport(pub Vec<PmnistReport>);

/// Run permuted MNIST once per metaplasticity strength.
pub fn run_pmnist_sweep(sweep: &PmnistSweep) -> Result<PmnistSweepReport> {
    if sweep.meta_values.is_empty() {
        bail!("meta_values is empty: list the metaplasticity strengths m to compare");
    }
    sweep
        .meta_values
        .iter()
        .map(|&meta| {
            let config = PmnistConfig {
                meta,
                ..sweep.network.clone()
            };
            run_pmnist(&config, sweep.seed).with_context(|| format!("m = {meta}"))
        })
        .collect::<Result<_>>()
        .map(PmnistSweepReport)
}

/// Write the figures and the table of every run.
pub fn save_pmnist_sweep(reports: &PmnistSweepReport, dir: &Path) -> Result<()> {
    save_pmnist_figures(&reports.0, dir)
}
