//! Analog SGD with pulsed updates: the baseline every on-chip rule is compared with.
//!
//! A multilayer perceptron whose weight matrices live on crossbar tiles (one tile per
//! layer). The forward pass is the tiles' forward MVM, the error is backpropagated with
//! the transposed MVM of the same devices (the backward cycle of resistive processing
//! units), and the weight update `ΔW_k = η δ_k h_{k-1}ᵀ / batch` is applied as coincident
//! stochastic pulse trains (Gokmen & Vlasov, Front. Neurosci. 2016) through the
//! [`LearningRule`] API, so every device non-ideality acts on learning. Biases, the
//! activations and the output error (softmax cross-entropy, or the squared error of sigmoid
//! outputs) are digital. With `device = "digital"` the same network trains in `f32`: the
//! reference the accuracy loss is measured against.
//!
//! The same loop runs NeuroSim's online training scheme (MLP+NeuroSim V3.0, Chen, Peng & Yu,
//! IEEE TCAD 2018): one image per update, squared error of sigmoid outputs, no biases, a
//! learning rate per layer, and a dense update that gives every device its own pulse count
//! ([`Sgd::dense`], with the tile's pulse rounding).

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

/// The error the output layer is trained on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputLoss {
    /// Softmax outputs and cross-entropy: `δ = t - p`.
    #[default]
    CrossEntropy,
    /// Sigmoid outputs and the squared error `Σ (t - a)²`: `δ = 2 a (1 - a) (t - a)`
    /// (NeuroSim's `s2`, MLP_NeuroSim_V3.0 Train.cpp).
    Mse,
}

/// Plain SGD as a [`LearningRule`]: `ΔW = η_k δ hᵀ / batch` from the backpropagated error.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate η of every layer without its own.
    pub learning_rate: f32,
    /// Learning rate of each layer (input side first); layers beyond the list use
    /// `learning_rate`.
    pub layer_learning_rates: Vec<f32>,
    /// Propose the change as a dense matrix applied device by device (NeuroSim's scheme)
    /// instead of an outer product applied by coincident pulse trains.
    pub dense: bool,
}

impl Sgd {
    /// The learning rate of layer `k`.
    fn rate(&self, k: usize) -> f32 {
        self.layer_learning_rates
            .get(k)
            .copied()
            .unwrap_or(self.learning_rate)
    }
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
        let update = OuterProductUpdate {
            post: signals.require_error(self.name())?.to_vec(),
            pre: signals.phase.inputs.to_vec(),
            rows: signals.rows,
            scale: self.rate(signals.layer) / signals.batch as f32,
        };
        Ok(if self.dense {
            WeightChange::Dense(update.dense())
        } else {
            WeightChange::OuterProduct(update)
        })
    }
}

/// A multilayer perceptron on synaptic layers `L` with digital biases.
pub struct Mlp<L> {
    layers: Vec<L>,
    biases: Vec<Vec<f32>>,
    activation: HiddenActivation,
    loss: OutputLoss,
    learn_biases: bool,
    /// Hidden activations reach the next layer binarised at this threshold.
    hidden_threshold: Option<f32>,
}

/// Activities of a forward pass: `h[0]` is the input, `h[k]` the output of layer k
/// (the last holds softmax probabilities or sigmoid outputs, as the loss says).
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
            loss: OutputLoss::CrossEntropy,
            learn_biases: true,
            hidden_threshold: None,
        })
    }

    /// Train on `loss`, with (`learn_biases`) or without digital biases (they stay 0).
    pub fn with_training(mut self, loss: OutputLoss, learn_biases: bool) -> Self {
        self.loss = loss;
        self.learn_biases = learn_biases;
        self
    }

    /// Let the next layer read hidden activations binarised at `threshold` (1 at or above,
    /// 0 below; NeuroSim's 1-bit hidden outputs), or analog (`None`). Updates and
    /// derivatives use the analog activations.
    pub fn with_hidden_threshold(mut self, threshold: Option<f32>) -> Self {
        self.hidden_threshold = threshold;
        self
    }

    /// The threshold of binarised hidden reads, if any.
    pub fn hidden_threshold(&self) -> Option<f32> {
        self.hidden_threshold
    }

    /// The output loss and whether biases are learned.
    pub fn training(&self) -> (OutputLoss, bool) {
        (self.loss, self.learn_biases)
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
        let threshold = self.hidden_threshold;
        for (k, layer) in self.layers.iter_mut().enumerate() {
            let mut u = vec![0.0; batch * layer.outputs()];
            match threshold.filter(|_| k > 0) {
                Some(t) => {
                    let bits: Vec<f32> =
                        h[k].iter().map(|&a| f32::from(u8::from(a >= t))).collect();
                    layer.forward(&bits, batch, &mut u)?
                }
                None => layer.forward(&h[k], batch, &mut u)?,
            }
            for row in u.chunks_exact_mut(layer.outputs()) {
                row.iter_mut()
                    .zip(&self.biases[k])
                    .for_each(|(v, b)| *v += b);
                if k == last && self.loss == OutputLoss::CrossEntropy {
                    linalg::softmax_in_place(row);
                } else if k == last {
                    row.iter_mut()
                        .for_each(|v| *v = HiddenActivation::Sigmoid.apply(*v));
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
    /// the output loss (through the layers' transposed reads), then the rule's weight
    /// changes and a digital bias step. Returns the predicted classes.
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
        let mut delta = self.output_error(&h[last + 1], labels);
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
            for row in delta.chunks_exact(n).filter(|_| self.learn_biases) {
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

impl<L> Mlp<L> {
    /// `δ = -∂L/∂u` at the output for outputs `out` (softmax probabilities or sigmoid
    /// activations) and the one-hot targets of `labels`.
    fn output_error(&self, out: &[f32], labels: &[u8]) -> Vec<f32> {
        let classes = out.len() / labels.len().max(1);
        let mut delta = vec![0.0; out.len()];
        for ((d, a), &label) in delta
            .chunks_exact_mut(classes)
            .zip(out.chunks_exact(classes))
            .zip(labels)
        {
            for (j, (dj, &aj)) in d.iter_mut().zip(a).enumerate() {
                let hit = j == usize::from(label);
                *dj = match (self.loss, hit) {
                    (OutputLoss::CrossEntropy, true) => 1.0 - aj,
                    (OutputLoss::CrossEntropy, false) => -aj,
                    (OutputLoss::Mse, true) => 2.0 * aj * (1.0 - aj) * (1.0 - aj),
                    (OutputLoss::Mse, false) => 2.0 * aj * (1.0 - aj) * -aj,
                };
            }
        }
        delta
    }
}

/// Initial weights of every layer of an MLP with layer sizes `sizes` (input first):
/// `U(±bound)`, or `U(±1/√fan_in)` (PyTorch's `nn.Linear` default) without a bound; layer k
/// from the stream `(seed, [SGD_INIT_STREAM + k])`.
pub fn initial_layers(
    sizes: &[usize],
    bound: Option<f32>,
    seed: u64,
) -> Result<Vec<DigitalSynapses>> {
    sizes
        .windows(2)
        .enumerate()
        .map(|(k, p)| {
            let stream = rng::SGD_INIT_STREAM + k as u64;
            match bound {
                Some(b) => DigitalSynapses::uniform_within(p[0], p[1], b, seed, stream),
                None => DigitalSynapses::uniform_random(p[0], p[1], seed, stream),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sigmoid(u: f32) -> f32 {
        1.0 / (1.0 + (-u).exp())
    }

    /// NeuroSim's online step (MLP_NeuroSim_V3.0 Train.cpp) on a 2-2-2 network without
    /// biases: a1 = σ(W1 x), a2 = σ(W2 a1), s2 = -2 a2 (1 - a2) (t - a2),
    /// s1 = a1 (1 - a1) W2ᵀ s2, ΔW2 = -α2 s2 a1ᵀ, ΔW1 = -α1 s1 xᵀ, computed here by hand and
    /// compared with one dense step of the MLP (MSE loss, no biases, rates [α1, α2]).
    #[test]
    fn mse_step_without_biases_is_neurosims_update() {
        let (w1, w2) = (vec![0.3f32, -0.2, 0.5, 0.1], vec![-0.4f32, 0.6, 0.2, -0.3]);
        let layers = vec![
            DigitalSynapses::new(2, 2, w1.clone()).unwrap(),
            DigitalSynapses::new(2, 2, w2.clone()).unwrap(),
        ];
        let mut mlp = Mlp::new(layers, HiddenActivation::Sigmoid)
            .unwrap()
            .with_training(OutputLoss::Mse, false);
        let (a1_rate, a2_rate) = (0.4f32, 0.2f32);
        let mut rule = Sgd {
            learning_rate: 9.0,
            layer_learning_rates: vec![a1_rate, a2_rate],
            dense: true,
        };
        let x = [1.0f32, 0.0];
        mlp.train_step(&mut rule, 9.0, &x, &[1]).unwrap();

        let a1: Vec<f32> = (0..2)
            .map(|j| sigmoid(w1[2 * j] * x[0] + w1[2 * j + 1] * x[1]))
            .collect();
        let a2: Vec<f32> = (0..2)
            .map(|j| sigmoid(w2[2 * j] * a1[0] + w2[2 * j + 1] * a1[1]))
            .collect();
        let t = [0.0f32, 1.0];
        let s2: Vec<f32> = (0..2)
            .map(|j| -2.0 * a2[j] * (1.0 - a2[j]) * (t[j] - a2[j]))
            .collect();
        let s1: Vec<f32> = (0..2)
            .map(|k| a1[k] * (1.0 - a1[k]) * (w2[k] * s2[0] + w2[2 + k] * s2[1]))
            .collect();
        for j in 0..2 {
            for k in 0..2 {
                let want2 = w2[2 * j + k] - a2_rate * s2[j] * a1[k];
                let want1 = w1[2 * j + k] - a1_rate * s1[j] * x[k];
                let got2 = mlp.layers()[1].weight()[2 * j + k];
                let got1 = mlp.layers()[0].weight()[2 * j + k];
                assert!((got2 - want2).abs() < 1e-6, "W2[{j}{k}] {got2} vs {want2}");
                assert!((got1 - want1).abs() < 1e-6, "W1[{j}{k}] {got1} vs {want1}");
            }
        }
        assert!(mlp.biases.iter().flatten().all(|&b| b == 0.0), "no biases");
    }

    /// With a hidden threshold the second layer reads NeuroSim's 1-bit hidden outputs
    /// (da1 = [a1 >= 0.5]) while the activities kept for the update stay analog.
    #[test]
    fn hidden_threshold_binarises_only_the_next_layers_read() {
        let (w1, w2) = (vec![2.0f32, 0.0, -2.0, 0.0], vec![0.7f32, 0.3, -0.5, 0.9]);
        let layers = vec![
            DigitalSynapses::new(2, 2, w1).unwrap(),
            DigitalSynapses::new(2, 2, w2.clone()).unwrap(),
        ];
        let mut mlp = Mlp::new(layers, HiddenActivation::Sigmoid)
            .unwrap()
            .with_training(OutputLoss::Mse, false)
            .with_hidden_threshold(Some(0.5));
        let h = mlp.forward(&[1.0, 0.0], 1).unwrap();
        assert_eq!(
            h[1],
            vec![sigmoid(2.0), sigmoid(-2.0)],
            "analog hidden kept"
        );
        let want = [sigmoid(w2[0]), sigmoid(w2[2])];
        assert_eq!(h[2], want.to_vec(), "read of the bits [1, 0]");
    }
}
