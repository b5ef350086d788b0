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

use anyhow::{Context, Result, ensure};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::rule::{LearningRule, LocalSignals, Phase, SignalRequest, WeightChange, apply_change};
use crate::data::Dataset;
use crate::linalg;
use crate::nn::network::{argmax_rows, check_data_fits};
use crate::rng;
use crate::synapses::{DigitalSynapses, OuterProductUpdate, PlasticSynapses};

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
            rows: signals.rows,
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
                rows: batch,
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
