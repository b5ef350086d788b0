//! A binarized MLP with batch norm whose binary weights live on 2T2R device pairs, trained
//! through the learning-rule API (by [`super::meta_adam::MetaplasticAdam`] in the paper's
//! setting).
//!
//! Architecture as in Laborieux et al. 2021 (after Courbariaux, Hubara et al. 2016):
//! fully connected layers without bias whose weights are binary (`W_b = sign(W_h)`, the
//! hidden weights `W_h` belonging to the rule); every layer is followed by batch norm with
//! learned scale γ and shift β that normalises with the statistics of the current
//! mini-batch, in training *and* at test (the paper's `track_running_stats = False`);
//! hidden neurons output `sign(y)`, whose gradient passes where `|y| ≤ 1` (straight-through
//! estimator); the first layer sees the real pixels; the output layer's batch-normed values
//! are the logits of a softmax cross-entropy.
//!
//! A training step backpropagates through the binary layers' transposed reads, hands each
//! layer's rule the error `−∂L/∂a` at its pre-batch-norm sums `a` and its inputs, and applies
//! the proposed change to the [`BinarySynapses`] (only sign flips are written); batch norm
//! stays digital and takes plain Adam steps, like the biases of analog SGD.
//!
//! Every random draw comes from `xbar::rng::stream(seed, path)` and every product from
//! the thread-count-independent blocks of `crate::linalg`, so training is bit-identical
//! for any number of threads.

use crate::crossbar::TileConfig;
use crate::device::AnyDevice;
use crate::learning::rule::{LearningRule, LocalSignals, Phase, apply_change};
use crate::linalg;
use crate::nn::binary::{batch_norm_backward, column_moments, straight_through};
use crate::nn::optim::{AdamHyper, AdamMoments};
use crate::rng;
use crate::synapses::SynapticLayer;
use crate::synapses::pairs::{BinarySynapses, WriteTally, binary_weight};
use anyhow::{Context, Result, ensure};
use rand::RngExt;

/// Batch-norm variance floor ε (PyTorch's default).
const BN_EPSILON: f32 = 1e-5;

/// One layer: binary synapses and batch norm.
struct BnnLayer {
    synapses: BinarySynapses,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// Batch-norm scale γ and shift β of every layer (one snapshot per task in the paper).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormParams {
    /// γ of each layer.
    pub gamma: Vec<Vec<f32>>,
    /// β of each layer.
    pub beta: Vec<Vec<f32>>,
}

/// Plain Adam on every layer's batch-norm γ and β (never consolidated): hyper-parameters
/// and memories; the paper starts fresh memories for every task.
#[derive(Clone, Debug)]
pub struct BatchNormAdam {
    hyper: AdamHyper,
    layers: Vec<[AdamMoments; 2]>,
}

/// What one training step did.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    /// Mean softmax cross-entropy of the batch, nats.
    pub loss: f64,
    /// Re-programmed synapses (sign flips of the binary weights) per layer.
    pub flips_per_layer: Vec<u64>,
    /// Programming cost of those writes.
    pub writes: WriteTally,
}

/// A binarized MLP whose binary weights live on 2T2R pairs of one device model.
pub struct MetaplasticBnn {
    layers: Vec<BnnLayer>,
}

/// Per-layer values the backward pass and the rule need.
struct Cache {
    input: Vec<f32>,
    /// Pre-batch-norm sums `a = x·W_bᵀ`.
    sums: Vec<f32>,
    xhat: Vec<f32>,
    inv_std: Vec<f32>,
    y: Vec<f32>,
}

impl MetaplasticBnn {
    /// A network of layer sizes `sizes` (input first) and its initial hidden weights, one
    /// `outputs x inputs` matrix per layer (to hand to the rule, e.g.
    /// [`super::meta_adam::MetaplasticAdam::new`]): hidden weights uniform in `±init_width/2`
    /// (the authors' `--init uniform --init-width`), γ uniform in [0, 1) (PyTorch 1.1's
    /// batch-norm initialisation, the version the paper used), β = 0. Every synapse gets a
    /// fabricated pair of `device` cells on 2T2R tiles configured by `tile` (binary
    /// encoding) for `sign(W_h)`, programmed by [`MetaplasticBnn::program_all`] and read
    /// through the tiles' sense amplifiers; layer `l`'s tiles draw their random numbers
    /// under the key `(seed, [METAPLASTIC_TILE_STREAM, l])`.
    pub fn new(
        sizes: &[usize],
        init_width: f32,
        device: AnyDevice,
        tile: &TileConfig,
        seed: u64,
    ) -> Result<(Self, Vec<Vec<f32>>)> {
        ensure!(
            sizes.len() >= 2,
            "layer sizes {sizes:?}: give at least input and output"
        );
        ensure!(
            sizes.iter().all(|&s| s > 0),
            "layer sizes {sizes:?} must all be >= 1"
        );
        ensure!(
            init_width.is_finite() && init_width > 0.0,
            "init_width = {init_width} must be finite and > 0"
        );
        let mut layers = Vec::with_capacity(sizes.len() - 1);
        let mut hidden_weights = Vec::with_capacity(sizes.len() - 1);
        for (l, s) in sizes.windows(2).enumerate() {
            let (inputs, outputs) = (s[0], s[1]);
            let mut r = rng::stream(seed, &[rng::METAPLASTIC_INIT_STREAM, l as u64]);
            let half = init_width / 2.0;
            let hidden: Vec<f32> = (0..inputs * outputs)
                .map(|_| r.random_range(-half..half))
                .collect();
            let gamma = (0..outputs).map(|_| r.random_range(0.0..1.0)).collect();
            let tile_seed = rng::stream_key(seed, &[rng::METAPLASTIC_TILE_STREAM, l as u64]);
            let synapses = BinarySynapses::fabricate(
                device.clone(),
                inputs,
                outputs,
                &hidden,
                tile.clone(),
                tile_seed,
            )
            .with_context(|| format!("layer {l}"))?;
            layers.push(BnnLayer {
                synapses,
                gamma,
                beta: vec![0.0; outputs],
            });
            hidden_weights.push(hidden);
        }
        Ok((MetaplasticBnn { layers }, hidden_weights))
    }

    /// Program every pair to its binary weight (the initial write of the arrays); returns
    /// its cost.
    pub fn program_all(&mut self) -> Result<WriteTally> {
        let mut total = WriteTally::default();
        for layer in &mut self.layers {
            layer.synapses.program_all(&mut total)?;
        }
        Ok(total)
    }

    /// Layer sizes, input first.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.layers[0].synapses.inputs())
            .chain(self.layers.iter().map(|l| l.synapses.outputs()))
            .collect()
    }

    /// Number of layers.
    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    /// The binary synapses of layer `layer`.
    pub fn synapses(&self, layer: usize) -> Option<&BinarySynapses> {
        self.layers.get(layer).map(|l| &l.synapses)
    }

    /// A copy of every layer's batch-norm γ and β.
    pub fn batch_norm(&self) -> BatchNormParams {
        BatchNormParams {
            gamma: self.layers.iter().map(|l| l.gamma.clone()).collect(),
            beta: self.layers.iter().map(|l| l.beta.clone()).collect(),
        }
    }

    /// Restore batch-norm parameters taken by [`MetaplasticBnn::batch_norm`].
    pub fn set_batch_norm(&mut self, bn: &BatchNormParams) -> Result<()> {
        ensure!(
            bn.gamma.len() == self.layers.len() && bn.beta.len() == self.layers.len(),
            "batch-norm snapshot has {} layers, the network {}",
            bn.gamma.len(),
            self.layers.len()
        );
        for ((l, g), b) in self.layers.iter_mut().zip(&bn.gamma).zip(&bn.beta) {
            let n = l.synapses.outputs();
            ensure!(
                g.len() == n && b.len() == n,
                "batch-norm snapshot does not match a layer of {n} neurons"
            );
            l.gamma.clone_from(g);
            l.beta.clone_from(b);
        }
        Ok(())
    }

    /// Fresh (zeroed) Adam memories for this network's batch norm, stepping with `hyper`.
    pub fn batch_norm_adam(&self, hyper: AdamHyper) -> BatchNormAdam {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let n = l.synapses.outputs();
                [AdamMoments::new(n), AdamMoments::new(n)]
            })
            .collect();
        BatchNormAdam { hyper, layers }
    }

    /// Logits of a batch of `batch` images (`x` holds `batch x inputs` values), with
    /// batch norm on this batch's statistics (one sensing of every array).
    pub fn logits(&mut self, x: &[f32], batch: usize) -> Result<Vec<f32>> {
        self.check_batch(x, batch)?;
        let mut caches = self.forward(x, batch)?;
        Ok(caches.pop().map(|c| c.y).unwrap_or_default())
    }

    fn check_batch(&self, x: &[f32], batch: usize) -> Result<()> {
        let inputs = self.layers[0].synapses.inputs();
        ensure!(
            batch >= 2,
            "batch norm needs at least 2 images, got {batch}"
        );
        ensure!(
            x.len() == batch * inputs,
            "input holds {} values, expected {batch} images of {inputs}",
            x.len()
        );
        Ok(())
    }

    /// One training step on a batch: forward with batch statistics, backward with the
    /// straight-through estimator through the binary layers' transposed reads; for each
    /// layer (output side first) `rule` proposes a weight change from the error `−∂L/∂a` at
    /// the pre-batch-norm sums and the layer's inputs, the binary synapses carry it out
    /// (re-programming the pairs whose sign flips), and batch norm takes an Adam step.
    /// The arrays are sensed once, by the forward pass; the backward pass uses the latched
    /// bits.
    pub fn train_step<R: LearningRule>(
        &mut self,
        rule: &mut R,
        batch_norm_adam: &mut BatchNormAdam,
        x: &[f32],
        labels: &[u8],
    ) -> Result<StepReport> {
        let batch = labels.len();
        self.check_batch(x, batch)?;
        let classes = self.layers[self.layers.len() - 1].synapses.outputs();
        ensure!(
            labels.iter().all(|&l| usize::from(l) < classes),
            "a label is >= the {classes} outputs of the network"
        );
        ensure!(
            batch_norm_adam.layers.len() == self.layers.len(),
            "the batch-norm optimizer belongs to another network"
        );
        ensure!(
            !rule.signals().second_phase,
            "rule {} asks for a second phase, which a binarized network does not run",
            rule.name()
        );
        let caches = self.forward(x, batch)?;
        let (loss, mut dy) = softmax_cross_entropy(&caches[caches.len() - 1].y, labels, classes);
        let mut report = StepReport {
            loss,
            flips_per_layer: vec![0; self.layers.len()],
            writes: WriteTally::default(),
        };
        for l in (0..self.layers.len()).rev() {
            let cache = &caches[l];
            let layer = &mut self.layers[l];
            let n = layer.synapses.outputs();
            if l + 1 < caches.len() {
                straight_through(&mut dy, &cache.y);
            }
            let (da, dgamma, dbeta) =
                batch_norm_backward(&dy, &cache.xhat, &cache.inv_std, &layer.gamma, n);
            if l > 0 {
                let mut dx = vec![0.0; batch * layer.synapses.inputs()];
                layer.synapses.transposed(&da, batch, &mut dx)?;
                dy = dx;
            }
            let error: Vec<f32> = da.iter().map(|d| -d).collect();
            let signals = LocalSignals {
                layer: l,
                batch,
                rows: batch,
                phase: Phase {
                    inputs: &cache.input,
                    outputs: &cache.sums,
                    beta: 0.0,
                },
                error: Some(&error),
                second_phase: None,
            };
            let change = rule
                .propose(&signals)
                .with_context(|| format!("rule {} on layer {l}", rule.name()))?;
            apply_change(&mut layer.synapses, &change)
                .with_context(|| format!("weight update of layer {l}"))?;
            let writes = layer.synapses.take_writes();
            report.flips_per_layer[l] = writes.synapse_writes;
            report.writes += writes;
            let [sg, sb] = &mut batch_norm_adam.layers[l];
            sg.step(&batch_norm_adam.hyper, &mut layer.gamma, &dgamma);
            sb.step(&batch_norm_adam.hyper, &mut layer.beta, &dbeta);
        }
        Ok(report)
    }

    /// Forward pass with batch statistics.
    fn forward(&mut self, x: &[f32], batch: usize) -> Result<Vec<Cache>> {
        let mut act = x.to_vec();
        let last = self.layers.len() - 1;
        let mut caches = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let n = layer.synapses.outputs();
            let mut sums = vec![0.0; batch * n];
            layer.synapses.forward(&act, batch, &mut sums)?;
            let (mean, var) = column_moments(&sums, n);
            let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (v + BN_EPSILON).sqrt()).collect();
            let xhat: Vec<f32> = sums
                .iter()
                .enumerate()
                .map(|(i, &v)| (v - mean[i % n]) * inv_std[i % n])
                .collect();
            let y: Vec<f32> = xhat
                .iter()
                .enumerate()
                .map(|(i, &h)| layer.gamma[i % n] * h + layer.beta[i % n])
                .collect();
            let next = if l == last {
                Vec::new()
            } else {
                y.iter().map(|&v| binary_weight(v)).collect()
            };
            caches.push(Cache {
                input: std::mem::replace(&mut act, next),
                sums,
                xhat,
                inv_std,
                y,
            });
        }
        Ok(caches)
    }
}

/// Mean softmax cross-entropy of `logits` (`batch x classes`) and its gradient.
fn softmax_cross_entropy(logits: &[f32], labels: &[u8], classes: usize) -> (f64, Vec<f32>) {
    let batch = labels.len();
    let mut grad = vec![0.0f32; logits.len()];
    let mut loss = 0.0f64;
    for ((row, g), &label) in logits
        .chunks_exact(classes)
        .zip(grad.chunks_exact_mut(classes))
        .zip(labels)
    {
        let norm = linalg::softmax(row, g);
        let label = usize::from(label);
        loss += f64::from(norm.sum.ln() + norm.max - row[label]);
        for (k, gk) in g.iter_mut().enumerate() {
            *gk = (*gk - if k == label { 1.0 } else { 0.0 }) / batch as f32;
        }
    }
    (loss / batch as f64, grad)
}
