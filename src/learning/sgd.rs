//! Analog SGD with pulsed updates: the baseline every on-chip rule is compared with.
//!
//! A multilayer perceptron whose weight matrices live on crossbar tiles (one tile per
//! layer). The forward pass is the tiles' forward MVM, the error is backpropagated with
//! the transposed MVM of the same devices (the backward cycle of resistive processing
//! units), and the weight update `ΔW_k = η δ_k h_{k-1}ᵀ / batch` is applied as coincident
//! stochastic pulse trains (Gokmen & Vlasov, Front. Neurosci. 2016) through the
//! [`LearningRule`] API, so every device non-ideality acts on learning. Biases, the
//! activations and the softmax cross-entropy error are digital. With `device = "digital"`
//! the same network trains in `f32`: the reference the accuracy loss is measured against.

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::ep::crossbar::{CrossbarSynapses, program_layers};
use super::ep::{DigitalSynapses, OuterProductUpdate};
use super::rule::{
    LearningRule, LocalSignals, Phase, PlasticSynapses, SignalRequest, WeightChange, apply_change,
};
use crate::crossbar::TileConfig;
use crate::crossbar::update::PulsedUpdateConfig;
use crate::data::{Dataset, Split};
use crate::device::{Device, preset};
use crate::linalg;
use crate::nn::operator::{argmax_rows, check_data_fits};
use crate::rng;

/// Name of the floating-point reference in [`SgdConfig::device`].
pub const DIGITAL: &str = "digital";
/// Classes of MNIST.
const CLASSES: usize = 10;

/// Hidden-layer nonlinearity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenActivation {
    /// Logistic sigmoid `1 / (1 + e^{-u})`.
    #[default]
    Sigmoid,
    /// Rectified linear unit `max(u, 0)`.
    Relu,
}

impl HiddenActivation {
    fn apply(self, u: f32) -> f32 {
        match self {
            HiddenActivation::Sigmoid => 1.0 / (1.0 + (-u).exp()),
            HiddenActivation::Relu => u.max(0.0),
        }
    }

    /// Derivative from the activation's output `h`.
    fn derivative(self, h: f32) -> f32 {
        match self {
            HiddenActivation::Sigmoid => h * (1.0 - h),
            HiddenActivation::Relu => f32::from(u8::from(h > 0.0)),
        }
    }
}

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

/// Plain SGD as a [`LearningRule`]: `ΔW = η δ hᵀ / batch` from the backpropagated error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate η.
    pub learning_rate: f32,
}

impl LearningRule for Sgd {
    fn name(&self) -> &str {
        "sgd"
    }

    fn signals(&self) -> SignalRequest {
        SignalRequest {
            error: true,
            second_phase: false,
        }
    }

    fn propose(&mut self, signals: &LocalSignals<'_>) -> Result<WeightChange> {
        Ok(WeightChange::OuterProduct(OuterProductUpdate {
            post: signals.require_error(self.name())?.to_vec(),
            pre: signals.phase.inputs.to_vec(),
            rows: signals.batch,
            scale: self.learning_rate / signals.batch as f32,
        }))
    }
}

/// A multilayer perceptron on synaptic layers `L` with digital biases.
pub struct Mlp<L> {
    layers: Vec<L>,
    biases: Vec<Vec<f32>>,
    activation: HiddenActivation,
}

/// Activities of a forward pass: `h[0]` is the input, `h[k]` the output of layer k
/// (the last holds softmax probabilities).
type Activities = Vec<Vec<f32>>;

impl<L: PlasticSynapses> Mlp<L> {
    /// Wrap layers (input side first) with zero biases.
    pub fn new(layers: Vec<L>, activation: HiddenActivation) -> Result<Self> {
        ensure!(!layers.is_empty(), "an MLP needs at least one layer");
        for (k, pair) in layers.windows(2).enumerate() {
            ensure!(
                pair[0].outputs() == pair[1].inputs(),
                "layer {k} has {} outputs but layer {} takes {} inputs",
                pair[0].outputs(),
                k + 1,
                pair[1].inputs()
            );
        }
        let biases = layers.iter().map(|l| vec![0.0; l.outputs()]).collect();
        Ok(Self {
            layers,
            biases,
            activation,
        })
    }

    /// The synaptic layers.
    pub fn layers(&self) -> &[L] {
        &self.layers
    }

    /// The synaptic layers, mutable (e.g. to reset the tiles' ledgers).
    pub fn layers_mut(&mut self) -> &mut [L] {
        &mut self.layers
    }

    /// The hidden-layer non-linearity.
    pub fn activation(&self) -> HiddenActivation {
        self.activation
    }

    /// Number of outputs (classes).
    pub fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs()
    }

    /// Forward pass of a batch.
    fn forward(&mut self, x: &[f32], batch: usize) -> Result<Activities> {
        let mut h = vec![x.to_vec()];
        let last = self.layers.len() - 1;
        for (k, layer) in self.layers.iter_mut().enumerate() {
            let mut u = vec![0.0; batch * layer.outputs()];
            layer.forward(&h[k], batch, &mut u)?;
            for row in u.chunks_exact_mut(layer.outputs()) {
                row.iter_mut()
                    .zip(&self.biases[k])
                    .for_each(|(v, b)| *v += b);
                if k == last {
                    linalg::softmax_in_place(row);
                } else {
                    row.iter_mut().for_each(|v| *v = self.activation.apply(*v));
                }
            }
            h.push(u);
        }
        Ok(h)
    }

    /// Class scores of a batch.
    pub fn predict(&mut self, x: &[f32], batch: usize) -> Result<Vec<usize>> {
        let h = self.forward(x, batch)?;
        Ok(argmax_rows(
            &h[h.len() - 1],
            self.layers[self.layers.len() - 1].outputs(),
        ))
    }

    /// One training step on a batch: forward, backpropagated errors `δ_k = -∂L/∂u_k` of
    /// the softmax cross-entropy (through the layers' transposed reads), then the rule's
    /// weight changes and a digital bias step. Returns the predicted classes.
    pub fn train_step<R: LearningRule>(
        &mut self,
        rule: &mut R,
        learning_rate: f32,
        x: &[f32],
        labels: &[u8],
    ) -> Result<Vec<usize>> {
        let batch = labels.len();
        let h = self.forward(x, batch)?;
        let last = self.layers.len() - 1;
        let classes = self.layers[last].outputs();
        let predicted = argmax_rows(&h[last + 1], classes);
        let mut delta = h[last + 1].iter().map(|p| -p).collect::<Vec<f32>>();
        for (row, &label) in delta.chunks_exact_mut(classes).zip(labels) {
            row[usize::from(label)] += 1.0;
        }
        for k in (0..=last).rev() {
            let below = if k > 0 {
                let mut back = vec![0.0; batch * self.layers[k].inputs()];
                self.layers[k].transposed(&delta, batch, &mut back)?;
                back.iter_mut()
                    .zip(&h[k])
                    .for_each(|(e, &hk)| *e *= self.activation.derivative(hk));
                Some(back)
            } else {
                None
            };
            let signals = LocalSignals {
                layer: k,
                batch,
                phase: Phase {
                    inputs: &h[k],
                    outputs: &h[k + 1],
                    beta: 0.0,
                },
                error: Some(&delta),
                second_phase: None,
            };
            let change = rule.propose(&signals)?;
            apply_change(&mut self.layers[k], &change)
                .with_context(|| format!("weight update of layer {k}"))?;
            let n = self.biases[k].len();
            for row in delta.chunks_exact(n) {
                self.biases[k]
                    .iter_mut()
                    .zip(row)
                    .for_each(|(b, d)| *b += learning_rate * d / batch as f32);
            }
            if let Some(back) = below {
                delta = back;
            }
        }
        Ok(predicted)
    }
}

/// Layer sizes of a configuration: 784, the hidden sizes, 10.
fn layer_sizes(config: &SgdConfig, inputs: usize) -> Vec<usize> {
    let mut sizes = vec![inputs];
    sizes.extend(&config.hidden);
    sizes.push(CLASSES);
    sizes
}

/// Initial weights `U(±1/√fan_in)` of every layer of an MLP with layer sizes `sizes`
/// (input first; PyTorch's `nn.Linear` default), layer k from the stream
/// `(seed, [SGD_INIT_STREAM + k])`.
pub fn initial_layers(sizes: &[usize], seed: u64) -> Result<Vec<DigitalSynapses>> {
    sizes
        .windows(2)
        .enumerate()
        .map(|(k, p)| {
            DigitalSynapses::uniform_random(p[0], p[1], seed, rng::SGD_INIT_STREAM + k as u64)
        })
        .collect()
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

/// Mini-batches of one training epoch: size, and the seed and epoch index that select the
/// shuffle (stream `(seed, [EPOCH_SHUFFLE_STREAM, epoch])`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochSchedule {
    /// Images per mini-batch (the last one may be smaller).
    pub batch_size: usize,
    /// Seed of the shuffle.
    pub seed: u64,
    /// Epoch index, from 0.
    pub epoch: usize,
}

/// Train `mlp` for one epoch of shuffled mini-batches with `rule` (weights) and a digital
/// bias step of rate `bias_learning_rate`; returns the fraction of training images
/// classified correctly during the epoch (before the update of their mini-batch).
pub fn train_epoch<L: PlasticSynapses, R: LearningRule>(
    mlp: &mut Mlp<L>,
    rule: &mut R,
    bias_learning_rate: f32,
    train: &Dataset,
    schedule: EpochSchedule,
) -> Result<f64> {
    check_data_fits(mlp.layers()[0].inputs(), mlp.outputs(), train)?;
    ensure!(!train.is_empty(), "cannot train on an empty data set");
    ensure!(schedule.batch_size > 0, "batch_size must be at least 1");
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut crate::rng::stream(
        schedule.seed,
        &[rng::EPOCH_SHUFFLE_STREAM, schedule.epoch as u64],
    ));
    let mut correct = 0;
    for indices in order.chunks(schedule.batch_size) {
        let x: Vec<f32> = indices
            .iter()
            .flat_map(|&i| train.image(i).to_vec())
            .collect();
        let labels: Vec<u8> = indices.iter().map(|&i| train.labels[i]).collect();
        let predicted = mlp.train_step(rule, bias_learning_rate, &x, &labels)?;
        correct += count_correct(&predicted, &labels);
    }
    Ok(correct as f64 / train.len() as f64)
}

fn count_correct(predicted: &[usize], labels: &[u8]) -> usize {
    predicted
        .iter()
        .zip(labels)
        .filter(|&(&p, &l)| p == usize::from(l))
        .count()
}

/// Images per inference batch in [`accuracy`].
const EVAL_BATCH: usize = 500;

/// Fraction of `data` classified correctly.
pub fn accuracy<L: PlasticSynapses>(mlp: &mut Mlp<L>, data: &Dataset) -> Result<f64> {
    let mut correct = 0;
    let d = data.features();
    for start in (0..data.len()).step_by(EVAL_BATCH) {
        let end = (start + EVAL_BATCH).min(data.len());
        let predicted = mlp.predict(&data.images[start * d..end * d], end - start)?;
        correct += count_correct(&predicted, &data.labels[start..end]);
    }
    Ok(correct as f64 / data.len() as f64)
}
